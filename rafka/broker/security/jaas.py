"""Kafka's `sasl.jaas.config` values: `<LoginModule class> <flag> key="value" ...;`.

Brokers read their users from them (PLAIN: `user_<name>="<password>"`) and the credentials they
present to other nodes (`username`, `password`).
"""

from __future__ import annotations

import re

from msgspec import Struct

_ENTRY = re.compile(
    r"""\s*(?P<module>[\w.$]+)\s+(?P<flag>required|requisite|sufficient|optional)\s*
        (?P<options>(?:[\w.\-]+\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^\s;"]+)\s*)*);\s*$""",
    re.VERBOSE,
)
_OPTION = re.compile(r"""([\w.\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;"]+))""")


class JaasEntry(Struct, frozen=True):
    """One login module entry of a JAAS configuration."""

    module: str
    options: dict[str, str]

    @property
    def plain_users(self) -> dict[str, str]:
        """PlainLoginModule's users: user_<name>="<password>"."""
        return {k[len("user_") :]: v for k, v in self.options.items() if k.startswith("user_")}


def parse_jaas(value: str) -> JaasEntry:
    """One login module entry; ValueError with the reason when it is not one."""
    match = _ENTRY.fullmatch(value.strip())
    if match is None:
        raise ValueError(
            "expected '<LoginModule> required key=\"value\" ...;' (one login module, ending in ;)"
        )
    options = {}
    for name, quoted, bare in _OPTION.findall(match["options"]):
        options[name] = re.sub(r"\\(.)", r"\1", quoted) if bare == "" else bare
    return JaasEntry(match["module"], options)
