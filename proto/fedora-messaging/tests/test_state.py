"""The state-change schema against bodies as OSBS writes them (proto/src/external.rs): it
validates them, with or without the optional fields, and gives fedora-messaging the filter
headers OSBS publishes itself (`fedora_messaging_user_<owner>`,
`fedora_messaging_container_<repo>`). Run: `python -m unittest discover proto/fedora-messaging/tests`
in a venv with fedora-messaging and this package."""

import unittest

import jsonschema

from osbs_messages import BuildStateChangeV1

REV = "3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce"

BODY = {
    "build_id": "0193f5d2abcdefghjkmnpqrstv",
    "nvr": "httpd-container-2.4-3",
    "old_state": "running",
    "new_state": "failed",
    "reason": "Dockerfile has no FROM",
    "pullspecs": [],
    "owner": "jdoe",
    "repo": "httpd",
    "namespace": "container",
    "component": "httpd-container",
    "url": f"https://src.fedoraproject.org/container/httpd.git#{REV}",
    "branch": "f41",
    "target": "f41-container-candidate",
    "koji_build_id": None,
    "at": "2025-01-15T10:22:03.120+00:00",
}


class StateChangeTest(unittest.TestCase):
    def test_a_full_body_validates_and_names_user_container_and_source(self):
        message = BuildStateChangeV1(body=BODY)
        message.validate()
        self.assertEqual(message.usernames, ["jdoe"])
        self.assertEqual(message.agent_name, "jdoe")
        self.assertEqual(message.containers, ["httpd"])
        self.assertEqual(message.packages, [], "an image's component is not an rpm package")
        self.assertEqual(message.component, "httpd-container")
        self.assertEqual(message.url, BODY["url"])
        self.assertEqual(
            message.summary,
            "jdoe's build 0193f5d2abcdefghjkmnpqrstv of httpd-container-2.4-3 (f41) is failed: "
            "Dockerfile has no FROM",
        )
        self.assertIn("Package: httpd-container", str(message))
        self.assertIn(f"Source:  {BODY['url']}", str(message))

    def test_the_filter_headers_are_the_ones_osbs_publishes(self):
        # proto/src/external.rs StateEvent::headers: user and container markers, nothing else.
        self.assertEqual(
            BuildStateChangeV1(body=BODY)._filter_headers(),
            {"fedora_messaging_user_jdoe": True, "fedora_messaging_container_httpd": True},
        )

    def test_a_body_from_before_the_optional_fields_still_validates(self):
        older = {
            key: value for key, value in BODY.items() if key not in ("namespace", "component", "url")
        }
        message = BuildStateChangeV1(body=older)
        message.validate()
        self.assertIsNone(message.url)
        self.assertEqual(message.packages, [])

    def test_a_body_breaking_the_schema_is_refused(self):
        with self.assertRaises(jsonschema.exceptions.ValidationError):
            BuildStateChangeV1(body=dict(BODY, new_state="done")).validate()


if __name__ == "__main__":
    unittest.main()
