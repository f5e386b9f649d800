#!/bin/bash
# LocalStack runs this once all services are ready (mounted at
# /etc/localstack/init in docker-compose.yml). Provisioning (buckets, queues,
# notifications) is NOT done here but by `ncaas-dev up`/`run`/`deploy`, so the
# same code path serves the venv runtime, compose and AWS.
echo "ncaas: LocalStack ready (services: ${SERVICES:-all})"
