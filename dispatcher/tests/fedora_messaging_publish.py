"""Publishes the body of a git.receive fixture the way Fedora's dist-git hook does: as a
CommitV1 message of the fedora-messaging-git-hook-messages schema package, through
fedora_messaging.api.publish (which waits for the broker's confirm).

Usage: FEDORA_MESSAGING_CONF=config.toml python fedora_messaging_publish.py FIXTURE.json
Prints the message id.
"""

import json
import sys

from fedora_messaging import api
from fedora_messaging_git_hook_messages.commit import CommitV1


def main():
    with open(sys.argv[1], encoding="utf-8") as fixture:
        body = json.load(fixture)["body"]
    message = CommitV1(body=body)
    message.validate()
    api.publish(message)
    print(message.id)


if __name__ == "__main__":
    main()
