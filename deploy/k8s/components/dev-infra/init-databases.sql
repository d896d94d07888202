-- Runs once, on the first start of an empty Postgres data directory
-- (mounted into /docker-entrypoint-initdb.d/). One database per service: no service reads
-- another service's tables. Each service runs its own migrations at start.
CREATE DATABASE gateway;
CREATE DATABASE conversation;
CREATE DATABASE ai_responder;
CREATE DATABASE routing;
CREATE DATABASE tickets;
CREATE DATABASE notifier;
CREATE DATABASE analytics;
