"""`osbs.build.state.change.v1`: a build moved from one state to another. Published once per
change on `<prefix>.osbs.build.state.change` (see docs/DESIGN.md, "Events out")."""

from .base import SCHEMA_URL, OsbsMessage

STATES = [
    "unspecified",
    "queued",
    "running",
    "pushing",
    "complete",
    "imported",
    "failed",
    "canceled",
    "superseded",
    "import_failed",
]

STRING_OR_NULL = {"type": ["string", "null"]}

BODY_SCHEMA = {
    "id": SCHEMA_URL + "osbs.build.state.change.v1",
    "$schema": "http://json-schema.org/draft-04/schema#",
    "description": "A build of a container image changed state",
    "type": "object",
    "properties": {
        "build_id": {"type": "string", "minLength": 1},
        "nvr": {"type": "string"},
        "old_state": {"type": "string", "enum": STATES},
        "new_state": {"type": "string", "enum": STATES},
        "reason": {"type": "string"},
        "pullspecs": {"type": "array", "items": {"type": "string"}},
        "owner": {"type": "string"},
        "repo": {"type": "string"},
        "namespace": STRING_OR_NULL,
        "component": STRING_OR_NULL,
        "branch": {"type": "string"},
        "target": {"type": "string"},
        "koji_build_id": {"type": ["integer", "null"]},
        "url": STRING_OR_NULL,
        "at": {"type": "string"},
    },
    "required": ["build_id", "nvr", "old_state", "new_state", "reason", "owner", "repo", "at"],
}


class BuildStateChangeV1(OsbsMessage):
    """A build changed state: `queued`, `running`, `pushing`, `complete`, `imported`, or one
    of the ends `failed`, `canceled`, `superseded`, `import_failed`."""

    topic = "osbs.build.state.change"
    body_schema = BODY_SCHEMA

    def _user(self):
        return self.body.get("owner", "")

    def _repo(self):
        return self.body.get("repo", "")

    @property
    def summary(self):
        what = self.body.get("nvr") or self._qualified_repo()
        where = self.body.get("branch")
        text = f"{self.agent_name or 'someone'}'s build {self.body['build_id']} of {what}"
        if where:
            text += f" ({where})"
        text += f" is {self.body['new_state'].replace('_', ' ')}"
        reason = self.body.get("reason")
        if self.body["new_state"] in ("failed", "canceled", "superseded", "import_failed") and reason:
            text += f": {reason}"
        return text

    def __str__(self):
        lines = [
            f"Build:   {self.body['build_id']}",
            f"NVR:     {self.body.get('nvr') or '(release not chosen yet)'}",
            f"Repo:    {self._qualified_repo()} ({self.body.get('branch', '')})",
            f"Target:  {self.body.get('target', '')}",
            f"Owner:   {self.body.get('owner', '')}",
            f"State:   {self.body['old_state']} -> {self.body['new_state']}",
        ]
        if self.body.get("reason"):
            lines.append(f"Reason:  {self.body['reason']}")
        if self.body.get("component"):
            lines.append(f"Package: {self.body['component']}")
        if self.body.get("url"):
            lines.append(f"Source:  {self.body['url']}")
        if self.body.get("koji_build_id"):
            lines.append(f"Koji:    build {self.body['koji_build_id']}")
        lines.extend(f"Image:   {pullspec}" for pullspec in self.body.get("pullspecs", []))
        return "\n".join(lines) + "\n"

    @property
    def packages(self):
        """No rpm packages: an image's Koji component is not an rpm. The dist-git repository
        is in `containers` (as fedora-messaging-git-hook-messages files a container push), so
        the filter headers are `fedora_messaging_user_<owner>` and
        `fedora_messaging_container_<repo>`, the ones OSBS publishes."""
        return []

    @property
    def component(self):
        """The Koji package (the image's `com.redhat.component`) once the release is known."""
        return self.body.get("component")

    @property
    def url(self):
        return self.body.get("url")

    def _qualified_repo(self):
        namespace = self.body.get("namespace")
        repo = self._repo()
        return f"{namespace}/{repo}" if namespace else repo
