"""The one harness every script and suite runs the service and its brokers with (service.py,
kafka.py), in Python; shell scripts reach the same code through harness.sh and __main__.py.

    from harness import Broker, Service, build
    with Broker(work / "kafka") as kafka, Service({"KAFKA_BROKERS": kafka.bootstrap}) as service:
        ...  # service.url
        code, seconds = service.stop()
"""

from .kafka import Broker
from .service import Failure, Service, build, environment, free_port, tail, wait_until

__all__ = ["Broker", "Failure", "Service", "build", "environment", "free_port", "tail",
           "wait_until"]
