// Helpers both staff consoles use (/console and /console/review), put inline in each page by
// conversation_api/console_pages.py. Each page defines S (its state, with S.token) and TOAST_MS.
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

// The signed-in user's claims, read from the token (the API checks it; this only labels the page).
function claims(token) {
  try { return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))); } catch { return null; }
}

function toast(text, ok = false) {
  const t = $("toast"); t.textContent = text; t.className = "toast" + (ok ? " ok" : ""); t.style.display = "block";
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.style.display = "none"; }, TOAST_MS);
}
