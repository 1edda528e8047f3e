#!/usr/bin/env bash
# Usage: find-python.sh 3.10|3.11 — prints the path of a working interpreter of that version, or fails saying so.
# Rasa 3.6 and the action server need 3.10; the conversation API, connectors and tests need 3.11.
set -u
want=${1:?usage: find-python.sh VERSION}
override_var="PYTHON${want//./}"
pyenv_root=$(command -v pyenv >/dev/null 2>&1 && pyenv root)
for candidate in "${!override_var:-}" "python$want" ${pyenv_root:+"$pyenv_root"/versions/"$want".*/bin/python"$want"} \
  /root/.pyenv/versions/"$want".*/bin/python"$want" /usr/local/bin/python"$want" /usr/bin/python"$want"; do
  [ -n "$candidate" ] || continue
  if path=$(command -v "$candidate" 2>/dev/null) &&
    "$path" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$want'" 2>/dev/null; then
    echo "$path"
    exit 0
  fi
done
echo "error: python$want not found (needed for $([ "$want" = 3.10 ] && echo 'Rasa 3.6 and the action server' || echo 'the conversation API and tests')). Install it (e.g. 'pyenv install $want') or set $override_var=/path/to/python$want" >&2
exit 1
