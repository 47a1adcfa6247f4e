"""FA allocation-group XML (requestFA / replaceFA data type 1), as pure functions.

replaceFA replaces *every* group of the login at once, so a group is written by reading the
current XML, swapping in ours and writing the whole document back (`upsert_group`); writing only
our group would delete the advisor's own groups.

A login of 10,000 clients holds groups of 10,000 accounts each (every block's, and the advisor's),
megabytes of XML that an ElementTree round trip takes a second over. So a new group is spliced
into the document's text when its name appears nowhere in it (then no group can have it), and a
read-back is checked on its own group's text: compared with the text written, parsed only when
IB's echo differs from it in form; anything else takes the whole-tree path.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from decimal import Decimal
from xml.sax.saxutils import escape

from strategies.events import AllocationGroup
from strategies.fa_methods import CONTRACTS_OR_SHARES, EQUAL_QUANTITY, fa_method

FA_GROUPS = 1  # requestFA/replaceFA data type; since TWS 10.20 the only one replaceFA accepts
# the short name TWS writes for EqualQuantity since groups and profiles were unified
METHOD_ALIASES = {"Equal": EQUAL_QUANTITY}
# IB does not publish a hard limit for group names; short alphanumeric names are what TWS's own
# dialog produces, so names are kept to 20 characters (confirm on a paper FA login).
MAX_GROUP_NAME_LEN = 20
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def group_name(client_order_id: str, prefix: str = "RB") -> str:
    """A deterministic, safe FA group name for one block order.

    Deterministic so that a restarted node finds (and overwrites) the group of the order it
    resumes; a hash suffix keeps two long client order ids from colliding after truncation.
    """
    clean = _UNSAFE.sub("", client_order_id)
    prefix = _UNSAFE.sub("", prefix)
    if clean.upper().startswith(prefix.upper()):
        clean = clean[len(prefix) :]
    name = f"{prefix}{clean}"
    if len(name) <= MAX_GROUP_NAME_LEN:
        return name
    digest = hashlib.sha1(client_order_id.encode()).hexdigest()[:8]
    return f"{name[: MAX_GROUP_NAME_LEN - 9]}_{digest}"


def _group_element(name: str, targets: dict[str, int], method: str = CONTRACTS_OR_SHARES) -> ET.Element:
    group = ET.Element("Group")
    ET.SubElement(group, "name").text = name
    ET.SubElement(group, "defaultMethod").text = method
    accounts = ET.SubElement(group, "ListOfAccts", {"varName": "list"})
    with_amounts = fa_method(method).xml_amounts
    for account, amount in targets.items():
        if int(amount) <= 0:
            raise ValueError(f"group {name}: account {account} has a non-positive amount {amount}")
        node = ET.SubElement(accounts, "Account")
        ET.SubElement(node, "acct").text = account
        if with_amounts:
            ET.SubElement(node, "amount").text = f"{int(amount)}.0"
    return group


def group_text(name: str, targets: dict[str, int], method: str = CONTRACTS_OR_SHARES) -> str:
    """The same group as `_group_element`, written straight to text: what `upsert_group` splices
    in and `group_matches` compares IB's echo with."""
    amounts = [int(q) for q in targets.values()]
    for account, amount in zip(targets, amounts, strict=True):
        if amount <= 0:
            raise ValueError(f"group {name}: account {account} has a non-positive amount {amount}")
    if fa_method(method).xml_amounts:
        body = "".join(
            [
                f"<Account><acct>{escape(a)}</acct><amount>{q}.0</amount></Account>"
                for a, q in zip(targets, amounts, strict=True)
            ]
        )
    else:
        body = "".join([f"<Account><acct>{escape(a)}</acct></Account>" for a in targets])
    return (
        f"<Group><name>{escape(name)}</name><defaultMethod>{escape(method)}</defaultMethod>"
        f'<ListOfAccts varName="list">{body}</ListOfAccts></Group>'
    )


def build_groups_xml(groups: dict[str, dict[str, int]], method: str = CONTRACTS_OR_SHARES) -> str:
    root = ET.Element("ListOfGroups")
    for name, targets in groups.items():
        root.append(_group_element(name, targets, method))
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")


def build_group_xml(group: AllocationGroup, prefix: str = "RB") -> tuple[str, str]:
    """(group name, replaceFA XML holding only this group)."""
    name = group_name(group.client_order_id, prefix)
    return name, build_groups_xml({name: dict(group.targets)}, group.method)


def _parse_root(xml: str) -> ET.Element:
    text = (xml or "").strip()
    if not text:
        return ET.Element("ListOfGroups")
    root = ET.fromstring(text.encode())
    if root.tag != "ListOfGroups":
        raise ValueError(f"not an FA groups document (root <{root.tag}>)")
    return root


def parse_groups_xml(xml: str) -> dict[str, dict[str, Decimal]]:
    """requestFA(1) XML -> {group name: {account: amount}} (amount as IB wrote it, Decimal)."""
    result: dict[str, dict[str, Decimal]] = {}
    for group in _parse_root(xml).findall("Group"):
        name = (group.findtext("name") or "").strip()
        members: dict[str, Decimal] = {}
        for account in group.iter("Account"):
            acct = (account.findtext("acct") or "").strip()
            amount = (account.findtext("amount") or "").strip()
            if acct:
                members[acct] = Decimal(amount) if amount else Decimal(0)
        result[name] = members
    return result


def group_methods(xml: str) -> dict[str, str]:
    """{group name: its default method}, TWS's short names read as the method they stand for."""
    methods = {}
    for g in _parse_root(xml).findall("Group"):
        method = (g.findtext("defaultMethod") or "").strip()
        methods[(g.findtext("name") or "").strip()] = METHOD_ALIASES.get(method, method)
    return methods


def upsert_group(
    existing_xml: str, name: str, targets: dict[str, int], method: str = CONTRACTS_OR_SHARES, written: str = ""
) -> str:
    """Whole-document XML for replaceFA: the login's current groups with `name` set to `targets`.

    `written`: the group's `group_text`, when the caller has it already.
    """
    text = (existing_xml or "").rstrip()
    closing = "</ListOfGroups>"
    if text.endswith(closing) and name not in text:
        # the common case, a new block's group: the advisor's document stays byte for byte
        return text[: -len(closing)] + (written or group_text(name, targets, method)) + closing
    root = _parse_root(existing_xml)
    for group in root.findall("Group"):
        if (group.findtext("name") or "").strip() == name:
            root.remove(group)
    root.append(_group_element(name, targets, method))
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")


def remove_groups(existing_xml: str, prefix: str) -> str:
    """Drop the groups this adapter wrote (by prefix), keeping the advisor's own."""
    root = _parse_root(existing_xml)
    for group in root.findall("Group"):
        if (group.findtext("name") or "").startswith(prefix):
            root.remove(group)
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")


def group_matches(
    xml: str, name: str, targets: dict[str, int], method: str = CONTRACTS_OR_SHARES, written: str = ""
) -> bool:
    """True if the read-back XML holds `name` with this method and exactly these amounts; for a
    method without amounts, these accounts in this order (EqualQuantity gives its extra shares to
    the accounts first in the group).

    `written`: the group's `group_text`. IB's echo of it, when it is that text or that text with
    the method after the accounts, matches without being parsed; any other form is parsed.
    """
    if written and _echoes(xml, name, written):
        return True
    group = _group_fragment(xml, name)
    if group is None:
        group = next((g for g in _parse_root(xml).findall("Group") if (g.findtext("name") or "").strip() == name), None)
    if group is None:
        return False
    found = (group.findtext("defaultMethod") or "").strip()
    if METHOD_ALIASES.get(found, found) != method:
        return False
    members: dict[str, Decimal] = {}
    for account in group.iter("Account"):
        acct = (account.findtext("acct") or "").strip()
        amount = (account.findtext("amount") or "").strip()
        if acct:
            members[acct] = Decimal(amount) if amount else Decimal(0)
    if not fa_method(method).xml_amounts:
        return list(members) == list(targets)
    return members == {a: Decimal(int(q)) for a, q in targets.items()}


def _fragment_text(xml: str, name: str) -> str | None:
    """The text of the one <Group> element holding `<name>name</name>`; None when the name is not
    there or there twice (then a text search cannot tell which group is ours)."""
    marker = f"<name>{escape(name)}</name>"
    at = xml.find(marker)
    if at < 0 or xml.find(marker, at + 1) >= 0:
        return None
    start, end = xml.rfind("<Group>", 0, at), xml.find("</Group>", at)
    if start < 0 or end < 0:
        return None
    return xml[start : end + len("</Group>")]


def _echoes(xml: str, name: str, written: str) -> bool:
    """True if the group named `name` in `xml` is `written` (a `group_text`) as it stands, or with
    its <defaultMethod> moved behind <ListOfAccts>; text equal to it holds what it holds."""
    found = _fragment_text(xml, name)
    if found is None or len(found) != len(written):
        return False
    if found == written:
        return True
    head = f"<Group><name>{escape(name)}</name>"
    method_end = written.find("</defaultMethod>", len(head)) + len("</defaultMethod>")
    method, accounts = written[len(head) : method_end], written[method_end : -len("</Group>")]
    return found == f"{head}{accounts}{method}</Group>"


def _group_fragment(xml: str, name: str) -> ET.Element | None:
    """The one group named `name`, parsed from its own text; None when that is not certain
    (not found, named twice, or its text is not one plain <Group> element)."""
    text = _fragment_text(xml, name)
    if text is None:
        return None
    try:
        group = ET.fromstring(text)
    except ET.ParseError:
        return None  # e.g. the previous group's start tag: this one's carries attributes
    return group if (group.findtext("name") or "").strip() == name else None
