"""What every OSBS message says about itself to Fedora's tools: the app, who acted, which
container repository it concerns."""

from fedora_messaging import message

SCHEMA_URL = "urn:osbs:message-schema:"


class OsbsMessage(message.Message):
    """An OSBS message. Subclasses say where the user and the repository are in the body."""

    @property
    def app_name(self):
        return "OSBS"

    @property
    def agent_name(self):
        """The account that asked for the build (the pusher, or `osbs container-build`'s user)."""
        return self._user() or None

    @property
    def usernames(self):
        user = self._user()
        return [user] if user else []

    @property
    def containers(self):
        """The dist-git container repositories the message concerns."""
        repo = self._repo()
        return [repo] if repo else []

    def _user(self):
        raise NotImplementedError

    def _repo(self):
        raise NotImplementedError
