# The Rasa server and the action server (Python 3.10, Rasa 3.6). The model is trained at build time.
FROM python:3.10-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 RASA_TELEMETRY_ENABLED=false PYTHONPATH=/app
COPY requirements/rasa.lock requirements/rasa.lock
RUN pip install --no-cache-dir -r requirements/rasa.lock
COPY config.yml domain.yml ./
COPY rasa_project rasa_project
COPY connectors connectors
COPY actions actions
RUN rasa train --config config.yml --domain domain.yml --data rasa_project/data --out models \
      --fixed-model-name reviewbot \
 && useradd --system --uid 10001 reviewbot && chown -R reviewbot /app
USER reviewbot
EXPOSE 5005 5055
CMD ["sh", "-c", "exec rasa run --enable-api --auth-token \"$RASA_TOKEN\" --port 5005 --model models/reviewbot.tar.gz --credentials rasa_project/credentials.yml --endpoints rasa_project/endpoints.yml"]
