# The conversation API (Python 3.11).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 API_WORKERS=2
# Only what the API imports at run time: no test or lint tools in production.
COPY requirements/api-runtime.lock requirements/api-runtime.lock
RUN pip install --no-cache-dir -r requirements/api-runtime.lock
COPY alembic.ini ./
COPY migrations migrations
COPY conversation_api conversation_api
COPY connectors connectors
# The conversation review: the intents and entities a designer may choose (domain.yml), and for its export
# the training data (conflicting examples) and the held-out sets (examples it must refuse).
COPY domain.yml ./
COPY rasa_project/data rasa_project/data
COPY tests/nlu tests/nlu
# The business file: the WhatsApp connector answers a shared location with its address.
COPY rasa_project/business rasa_project/business
RUN useradd --system --uid 10001 reviewbot
USER reviewbot
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["sh", "-c", "alembic upgrade heads && exec uvicorn --factory conversation_api.main:app_factory --host 0.0.0.0 --port 8000 --workers ${API_WORKERS} --timeout-keep-alive 75 --no-access-log"]
