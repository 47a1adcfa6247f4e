"""FA allocation groups and the XML that requestFA/replaceFA carry them in."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape


@dataclass
class FaGroup:
    name: str
    method: str
    members: list[tuple[str, float]]

    @property
    def accounts(self) -> list[str]:
        return [a for a, _ in self.members]

    @property
    def amounts(self) -> list[float]:
        return [amount for _, amount in self.members]


def fa_groups_to_xml(groups: Iterable[FaGroup]) -> str:
    # written as text: an ElementTree of 10,000-account groups takes half a second to serialize
    parts = ['<?xml version="1.0" encoding="UTF-8"?><ListOfGroups>']
    for g in groups:
        parts.append(f'<Group><name>{escape(g.name)}</name><ListOfAccts varName="list">')
        parts.extend(
            f"<Account><acct>{escape(acct)}</acct><amount>{amount:.1f}</amount></Account>" for acct, amount in g.members
        )
        parts.append(f"</ListOfAccts><defaultMethod>{escape(g.method)}</defaultMethod></Group>")
    parts.append("</ListOfGroups>")
    return "".join(parts)


def fa_groups_from_xml(xml: str) -> list[FaGroup]:
    root = ET.fromstring(xml.strip())
    groups = []
    for ge in root.iter("Group"):
        name = (ge.findtext("name") or "").strip()
        method = (ge.findtext("defaultMethod") or "").strip()
        members = []
        for ae in ge.iter("Account"):
            acct = (ae.findtext("acct") or "").strip()
            amount = ae.findtext("amount")
            members.append((acct, float(amount) if amount not in (None, "") else 0.0))
        groups.append(FaGroup(name, method, members))
    return groups


def account_aliases_xml(accounts: Iterable[str]) -> str:
    """requestFA's aliases (faDataType 3): the fake names every account after itself."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?><ListOfAccountAliases>'
        + "".join(f"<AccountAlias><account>{a}</account><alias>{a}</alias></AccountAlias>" for a in accounts)
        + "</ListOfAccountAliases>"
    )


def replacement_groups(
    master: str | None, accounts: Iterable[str], fa_data_type: int, xml: str
) -> list[FaGroup] | tuple[int, str]:
    """The groups a replaceFA sets, or IB's (error code, text) when it would refuse the update."""
    if master is None:
        return 321, "Error validating request.-'bA' : cause - FA data operations ignored for non FA customers."
    if fa_data_type != 1:
        return 585, "Replace FA is only supported for groups (faDataType 1)."
    try:
        groups = fa_groups_from_xml(xml)
    except ET.ParseError as exc:
        return 321, f"Error validating request: invalid FA XML ({exc})"
    known = set(accounts) - {master}
    for g in groups:
        unknown = [a for a in g.accounts if a not in known]
        if unknown:
            return 321, f"Error validating request: group {g.name} has unknown accounts {unknown}"
    return groups
