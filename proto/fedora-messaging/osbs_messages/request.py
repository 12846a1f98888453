"""`osbs.build.request.v1`: somebody asked for a build (`osbs container-build`, the
`fedpkg container-build` path). Mirrors Koji's `buildContainer(src, target, opts)`."""

from .base import SCHEMA_URL, OsbsMessage

STRING_OR_NULL = {"type": ["string", "null"]}
BOOL_OR_NULL = {"type": ["boolean", "null"]}
LIST_OR_NULL = {"type": ["array", "null"], "items": {"type": "string"}}

BODY_SCHEMA = {
    "id": SCHEMA_URL + "osbs.build.request.v1",
    "$schema": "http://json-schema.org/draft-04/schema#",
    "description": "A container build was requested",
    "type": "object",
    "properties": {
        "request_id": STRING_OR_NULL,
        "user": {"type": "string", "minLength": 1},
        "src": {"type": "string", "pattern": "#[0-9a-fA-F]{40}$"},
        "target": {"type": "string", "minLength": 1},
        "opts": {
            "type": "object",
            "properties": {
                "git_branch": {"type": "string", "minLength": 1},
                "scratch": BOOL_OR_NULL,
                "isolated": BOOL_OR_NULL,
                "release": STRING_OR_NULL,
                "yum_repourls": LIST_OR_NULL,
                "arch_override": {"type": ["string", "array", "null"]},
                "koji_parent_build": STRING_OR_NULL,
                "signing_intent": STRING_OR_NULL,
                "compose_ids": {"type": ["array", "null"], "items": {"type": "integer"}},
            },
            "required": ["git_branch"],
            "additionalProperties": False,
        },
    },
    "required": ["user", "src", "target", "opts"],
}


class BuildRequestV1(OsbsMessage):
    """A request to build one commit of a dist-git container repository into a Koji target."""

    topic = "osbs.build.request"
    body_schema = BODY_SCHEMA

    def _user(self):
        return self.body.get("user", "")

    def _repo(self):
        url = self.body["src"].split("#", 1)[0]
        name = url.rstrip("/").rsplit("/", 1)[-1]
        return name[:-4] if name.endswith(".git") else name

    @property
    def summary(self):
        kind = "scratch build" if self.body["opts"].get("scratch") else "build"
        return (
            f"{self.agent_name} requested a {kind} of {self._repo()} "
            f"({self.body['opts']['git_branch']}) into {self.body['target']}"
        )

    def __str__(self):
        opts = {key: value for key, value in self.body["opts"].items() if value not in (None, False, [])}
        lines = [
            f"User:    {self.body['user']}",
            f"Source:  {self.body['src']}",
            f"Target:  {self.body['target']}",
        ]
        lines.extend(f"Option:  {key} = {value}" for key, value in sorted(opts.items()))
        return "\n".join(lines) + "\n"

    @property
    def url(self):
        return self.body["src"].split("#", 1)[0]
