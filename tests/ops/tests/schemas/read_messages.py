"""Reads OSBS's messages as they went over the wire (a JSON list on stdin: routing key, raw
body, AMQP properties) with fedora-messaging's own API, as a consumer, FMN or datagrepper
would, and prints what it made of each as JSON. Run by tests/ops/tests/schemas.rs in a venv
holding fedora-messaging and osbs-messages."""

import json
import logging
import sys

import pika
from fedora_messaging import message


class Warnings(logging.Handler):
    """Keeps fedora-messaging's warnings ("falling back to the default schema", a publisher
    misbehaving): a message read cleanly logs none."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.seen = []

    def emit(self, record):
        self.seen.append(record.getMessage())


def read(wire, warnings):
    warnings.seen = []
    properties = wire["properties"]
    headers = properties["headers"]
    result = {"routing_key": wire["routing_key"]}
    try:
        # The consumer's path: the class from the schema header, body decoded, validated.
        received = message.get_message(
            wire["routing_key"],
            pika.BasicProperties(
                content_type=properties.get("content_type"),
                content_encoding=properties.get("content_encoding"),
                delivery_mode=properties.get("delivery_mode"),
                message_id=properties.get("message_id"),
                headers=dict(headers),
            ),
            wire["body"].encode("utf-8"),
        )
        # The publisher's path: the class by name, the message built from body, headers and
        # topic, validated again.
        cls = message.get_class(headers["fedora_messaging_schema"])
        built = cls(body=json.loads(wire["body"]), headers=dict(headers), topic=wire["routing_key"])
        built.validate()
    except Exception as error:  # the test prints it with the message
        result["error"] = f"{type(error).__name__}: {error}"
        result["warnings"] = warnings.seen
        return result
    result.update(
        error=None,
        warnings=warnings.seen,
        received_class=f"{type(received).__module__}.{type(received).__qualname__}",
        built_class=f"{cls.__module__}.{cls.__qualname__}",
        summary=received.summary,
        text=str(received),
        agent_name=received.agent_name,
        usernames=received.usernames,
        packages=received.packages,
        containers=received.containers,
        url=received.url,
        filter_headers=received._filter_headers(),
        built_summary=built.summary,
    )
    return result


def main():
    warnings = Warnings()
    logging.getLogger("fedora_messaging").addHandler(warnings)
    logging.getLogger("fedora_messaging").setLevel(logging.WARNING)
    json.dump([read(wire, warnings) for wire in json.load(sys.stdin)], sys.stdout)


if __name__ == "__main__":
    main()
