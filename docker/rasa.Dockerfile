# The Rasa server and the action server (Python 3.10, Rasa 3.6). The image carries the model file
# `make train` produced and CI tested, never one trained here:
#   docker build -f docker/rasa.Dockerfile --build-arg MODEL="$(make -s image-model)" .
FROM python:3.10-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 RASA_TELEMETRY_ENABLED=false PYTHONPATH=/app
COPY requirements/rasa.lock requirements/rasa.lock
RUN pip install --no-cache-dir -r requirements/rasa.lock
# The user first, so files are copied as theirs: a chown -R afterwards would store the model twice.
RUN useradd --system --uid 10001 reviewbot && chown reviewbot /app
COPY --chown=reviewbot config.yml domain.yml ./
COPY --chown=reviewbot rasa_project rasa_project
COPY --chown=reviewbot connectors connectors
COPY scripts/model-name.sh scripts/model-name.sh
# Refused before anything is copied when no model is given, or one trained on other inputs than the
# config, domain, data and NLU components just copied (the name is their hash).
ARG MODEL
RUN scripts/model-name.sh --check "$MODEL"
COPY --chown=reviewbot ${MODEL} models/
# The server (and the Kubernetes manifests) load models/reviewbot.tar.gz; the named file beside it
# and REVIEWBOT_MODEL say which model that is. tar reads it whole: a truncated copy fails here.
RUN ln -s "${MODEL#models/}" models/reviewbot.tar.gz && tar -tzf models/reviewbot.tar.gz >/dev/null
ENV REVIEWBOT_MODEL=${MODEL}
LABEL org.opencontainers.image.description="ReviewBot Rasa server and action server" reviewbot.model=${MODEL}
COPY --chown=reviewbot actions actions
USER reviewbot
EXPOSE 5005 5055
CMD ["sh", "-c", "exec rasa run --enable-api --auth-token \"$RASA_TOKEN\" --port 5005 --model models/reviewbot.tar.gz --credentials rasa_project/credentials.yml --endpoints rasa_project/endpoints.yml"]
