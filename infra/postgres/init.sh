#!/usr/bin/env bash
# One database and role each for Dagster, MLflow and the prediction log (passwords from .env).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE dagster LOGIN PASSWORD '${DAGSTER_DB_PASSWORD}';
CREATE DATABASE dagster OWNER dagster;
CREATE ROLE mlflow LOGIN PASSWORD '${MLFLOW_DB_PASSWORD}';
CREATE DATABASE mlflow OWNER mlflow;
CREATE ROLE mlserve LOGIN PASSWORD '${PREDICTIONS_DB_PASSWORD}';
CREATE DATABASE predictions OWNER mlserve;
SQL
