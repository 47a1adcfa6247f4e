"""FA allocation groups and the XML that requestFA/replaceFA carry them in."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
ROOT_OPEN, ROOT_CLOSE = "<ListOfGroups>", "</ListOfGroups>"
GROUP_OPEN, GROUP_CLOSE = "<Group>", "</Group>"
_PLAIN = re.compile(r"[A-Za-z0-9_.-]*")


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


def _group_xml(g: FaGroup) -> str:
    # written as text: an ElementTree of 10,000-account groups takes half a second to serialize
    accounts = "".join(
        f"<Account><acct>{escape(acct)}</acct><amount>{amount:.1f}</amount></Account>" for acct, amount in g.members
    )
    return (
        f'<Group><name>{escape(g.name)}</name><ListOfAccts varName="list">{accounts}</ListOfAccts>'
        f"<defaultMethod>{escape(g.method)}</defaultMethod></Group>"
    )


def fa_groups_to_xml(groups: Iterable[FaGroup]) -> str:
    return DECLARATION + ROOT_OPEN + "".join(map(_group_xml, groups)) + ROOT_CLOSE


def _read_group(ge: ET.Element) -> FaGroup:
    members = []
    for ae in ge.iter("Account"):
        acct = (ae.findtext("acct") or "").strip()
        amount = ae.findtext("amount")
        members.append((acct, float(amount) if amount not in (None, "") else 0.0))
    return FaGroup((ge.findtext("name") or "").strip(), (ge.findtext("defaultMethod") or "").strip(), members)


def fa_groups_from_xml(xml: str) -> list[FaGroup]:
    return [_read_group(ge) for ge in ET.fromstring(xml.strip()).iter("Group")]


def _plain_pieces(xml: str) -> list[str] | None:
    """The document's <Group> elements as text, when it is nothing but them laid end to end in
    <ListOfGroups> (after at most the declaration); None for any other layout."""
    text = xml.strip()
    text = text.removeprefix(DECLARATION)
    if not (text.startswith(ROOT_OPEN) and text.endswith(ROOT_CLOSE)):
        return None
    pieces, at, end = [], len(ROOT_OPEN), len(text) - len(ROOT_CLOSE)
    while at < end:
        if not text.startswith(GROUP_OPEN, at):
            return None
        close = text.find(GROUP_CLOSE, at, end)
        if close < 0:
            return None
        pieces.append(text[at : close + len(GROUP_CLOSE)])
        at = close + len(GROUP_CLOSE)
    return pieces


class GroupTexts:
    """Each group of the login's document as text, kept from its last trip over the wire.

    Every replaceFA carries the whole document and every requestFA answers with it: for a login
    of 10,000 clients that is megabytes, most of it groups the write leaves as they were. A group
    is written out again only when it changed, and a replaceFA's group whose text is byte for byte
    one the fake last wrote or read is taken back without parsing it again. That is sound piece by
    piece only: a document laid out as anything but plain <Group> elements end to end is parsed
    whole, and so is one in which any piece does not parse on its own (a split that cut an
    element would). What IB would answer does not change.
    """

    def __init__(self) -> None:
        self._written: dict[str, FaGroup] = {}  # text last written out -> a copy of the group it was
        self._received: dict[str, FaGroup] = {}  # the last replaceFA's pieces -> their groups

    def to_xml(self, groups: Iterable[FaGroup]) -> str:
        held = {g.name: (text, g) for text, g in self._written.items()}
        written, pieces = {}, []
        for g in groups:
            text, was = held.get(g.name, ("", None))
            if was is None or was.method != g.method or was.members != g.members:
                text, was = _group_xml(g), FaGroup(g.name, g.method, list(g.members))
            written[text] = was
            pieces.append(text)
        self._written = written
        return DECLARATION + ROOT_OPEN + "".join(pieces) + ROOT_CLOSE

    def from_xml(self, xml: str) -> list[FaGroup]:
        """fa_groups_from_xml, with the groups whose text it holds taken as they are."""
        pieces = _plain_pieces(xml)
        if pieces is None:
            return fa_groups_from_xml(xml)
        groups = [self._known(p) or _parse_piece(p) for p in pieces]
        if None in groups:
            return fa_groups_from_xml(xml)
        self._received = dict(zip(pieces, groups, strict=True))
        return [FaGroup(g.name, g.method, list(g.members)) for g in groups]

    def _known(self, text: str) -> FaGroup | None:
        if text in self._received:
            return self._received[text]
        was = self._written.get(text)
        return None if was is None else _as_read(was)


def _parse_piece(text: str) -> FaGroup | None:
    try:
        element = ET.fromstring(text)
    except ET.ParseError:
        return None
    return _read_group(element) if element.tag == "Group" else None


def _as_read(g: FaGroup) -> FaGroup | None:
    """What parsing `_group_xml(g)` gives, when that is certain without parsing it: every name
    of plain characters, which XML carries as they are, and amounts as written to one decimal."""
    if not _PLAIN.fullmatch("".join((g.name, g.method, *g.accounts))):
        return None
    return FaGroup(g.name, g.method, [(acct, float(f"{amount:.1f}")) for acct, amount in g.members])


def account_aliases_xml(accounts: Iterable[str]) -> str:
    """requestFA's aliases (faDataType 3): the fake names every account after itself."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?><ListOfAccountAliases>'
        + "".join(f"<AccountAlias><account>{a}</account><alias>{a}</alias></AccountAlias>" for a in accounts)
        + "</ListOfAccountAliases>"
    )


def replacement_groups(
    master: str | None, accounts: Iterable[str], fa_data_type: int, xml: str, texts: GroupTexts | None = None
) -> list[FaGroup] | tuple[int, str]:
    """The groups a replaceFA sets, or IB's (error code, text) when it would refuse the update."""
    if master is None:
        return 321, "Error validating request.-'bA' : cause - FA data operations ignored for non FA customers."
    if fa_data_type != 1:
        return 585, "Replace FA is only supported for groups (faDataType 1)."
    try:
        groups = fa_groups_from_xml(xml) if texts is None else texts.from_xml(xml)
    except ET.ParseError as exc:
        return 321, f"Error validating request: invalid FA XML ({exc})"
    known = set(accounts) - {master}
    for g in groups:
        unknown = [a for a in g.accounts if a not in known]
        if unknown:
            return 321, f"Error validating request: group {g.name} has unknown accounts {unknown}"
    return groups
