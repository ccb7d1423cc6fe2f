"""moto server for the AWS adapter tests, with DynamoDB requests serialised.

DynamoDB applies a conditional write or a transaction atomically: a
condition is checked and the write applied as one step, and transactions
are serialisable ("Amazon DynamoDB Transactions: How it works", isolation
levels; "Condition expressions"). moto server answers requests on several
threads and checks a condition and applies the write as separate Python
steps, so two racing conditional writes can both succeed there — which real
DynamoDB never allows, and which made the concurrent-import test fail only
on a busy machine. This launcher runs moto's own server application with
one lock around every DynamoDB request (and only those: an SQS long poll
must not hold up the others), so moto keeps DynamoDB's documented
atomicity. Everything else is moto's `moto_server` unchanged.

Usage: python scripts/moto_server.py HOST PORT
"""

import os
import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

DYNAMODB_LOCK = threading.Lock()


def serialise_dynamodb(app):
    def wrapped(environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB_"):
            with DYNAMODB_LOCK:
                # Consume the whole response under the lock.
                return list(app(environ, start_response))
        return app(environ, start_response)

    return wrapped


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    run_simple(
        host,
        port,
        serialise_dynamodb(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
