"""FA group documents as IB and the fake write them: a group written into one, and read back.

upsert_group splices a new group into the document's text and group_matches reads a group from
its own text when that is certain, else both go through the whole tree. Whichever path they
take, the document must hold the advisor's groups unchanged and ours as written; the expected
groups here are kept as plain dicts, not read through fa_xml.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from venues.ib_fa import fa_xml
from venues.ib_fa.fake_gateway.fa_groups import FaGroup, GroupTexts, fa_groups_to_xml

ACCOUNTS = [f"DU{1000 + k}" for k in range(12)]
NAMES = ["Advisors", "RB1", "RB12", "RBBUY", "Clients", "RB1SELL"]
METHODS = ["ContractsOrShares", "EqualQuantity"]

targets = st.dictionaries(st.sampled_from(ACCOUNTS), st.integers(1, 500), min_size=1, max_size=8)
documents = st.dictionaries(st.sampled_from(NAMES), st.tuples(st.sampled_from(METHODS), targets), max_size=4)


def _as_written(doc: dict, writer: str) -> str:
    if writer == "fake":  # the fake writes groups as IB does: amounts with one decimal, method last
        groups = [FaGroup(n, m, [(a, float(q)) for a, q in t.items()]) for n, (m, t) in doc.items()]
        return fa_groups_to_xml(groups)
    root = ET.Element("ListOfGroups")  # ElementTree, pretty-printed, method first
    for name, (method, members) in doc.items():
        g = ET.SubElement(root, "Group")
        ET.SubElement(g, "name").text = name
        ET.SubElement(g, "defaultMethod").text = method
        listed = ET.SubElement(g, "ListOfAccts", {"varName": "list"})
        for account, amount in members.items():
            a = ET.SubElement(listed, "Account")
            ET.SubElement(a, "acct").text = account
            ET.SubElement(a, "amount").text = f"{amount}.0"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def _read(xml: str) -> dict:
    """{name: (method, {account: amount})}, read with ElementTree alone."""
    out = {}
    for g in ET.fromstring(xml.encode()).findall("Group"):
        members = {
            a.findtext("acct").strip(): int(float(a.findtext("amount") or 0)) for a in g.iter("Account")
        }  # fmt: skip
        out[g.findtext("name").strip()] = (g.findtext("defaultMethod").strip(), members)
    return out


@settings(max_examples=150, deadline=None)
@given(documents, st.sampled_from(NAMES), st.sampled_from(METHODS), targets, st.sampled_from(["fake", "tree"]))
def test_a_written_group_replaces_its_namesake_and_leaves_every_other_group_as_it_was(
    doc, name, method, members, writer
):
    xml = fa_xml.upsert_group(_as_written(doc, writer), name, members, method)
    expected = dict(doc)
    expected[name] = (method, members if method == "ContractsOrShares" else {a: 0 for a in members})
    assert _read(xml) == expected
    assert fa_xml.group_matches(xml, name, members, method)


@settings(max_examples=150, deadline=None)
@given(documents, st.sampled_from(NAMES), targets, st.sampled_from(["fake", "tree"]))
def test_a_group_reads_back_only_with_its_own_amounts(doc, name, members, writer):
    xml = _as_written(doc, writer)
    held = doc.get(name)
    expected = held is not None and held[0] == "ContractsOrShares" and held[1] == members
    assert fa_xml.group_matches(xml, name, members) == expected


def test_a_group_whose_start_tag_carries_attributes_is_read_from_the_whole_document():
    xml = (
        "<ListOfGroups><Group><name>A</name><defaultMethod>ContractsOrShares</defaultMethod>"
        '<ListOfAccts varName="list"><Account><acct>DU1</acct><amount>3.0</amount></Account></ListOfAccts></Group>'
        '<Group kind="x"><name>B</name><defaultMethod>ContractsOrShares</defaultMethod>'
        '<ListOfAccts varName="list"><Account><acct>DU2</acct><amount>4.0</amount></Account></ListOfAccts></Group>'
        "</ListOfGroups>"
    )
    assert fa_xml.group_matches(xml, "B", {"DU2": 4})
    assert not fa_xml.group_matches(xml, "B", {"DU1": 3})


def _echo(xml: str) -> str:
    """The document as the fake gives it back after a replaceFA: its own layout, method last."""
    texts = GroupTexts()
    return texts.to_xml(texts.from_xml(xml))


@settings(max_examples=150, deadline=None)
@given(documents, st.sampled_from(NAMES), st.sampled_from(METHODS), targets, st.sampled_from(["fake", "tree"]))
def test_a_read_back_compared_with_the_text_written_agrees_with_one_parsed(doc, name, method, members, writer):
    written = fa_xml.group_text(name, members, method)
    spliced = fa_xml.upsert_group(_as_written(doc, writer), name, members, method, written)
    assert spliced == fa_xml.upsert_group(_as_written(doc, writer), name, members, method)
    for echo in (spliced, _echo(spliced)):
        assert fa_xml.group_matches(echo, name, members, method, written)
    # a read-back that does not hold the group as written never matches, whatever the text says
    other = {**members, "DU9999": 1}
    for xml in (_as_written(doc, writer), spliced):
        held = _read(xml).get(name)
        expected = held is not None and held[0] == method
        expected = expected and (
            held[1] == other if method == "ContractsOrShares" else list(held[1]) == list(other)
        )  # fmt: skip
        assert fa_xml.group_matches(xml, name, other, method, fa_xml.group_text(name, other, method)) == expected


def test_the_fakes_echo_of_a_written_group_is_matched_without_a_parse():
    written = fa_xml.group_text("RB1", {"DU1": 3, "DU2": 4})
    echo = _echo(fa_xml.upsert_group("<ListOfGroups></ListOfGroups>", "RB1", {"DU1": 3, "DU2": 4}, written=written))
    assert echo != f"<ListOfGroups>{written}</ListOfGroups>"  # the method moved behind the accounts
    assert fa_xml._echoes(echo, "RB1", written)
    assert not fa_xml._echoes(echo.replace("<amount>4.0<", "<amount>5.0<"), "RB1", written)
    assert not fa_xml._echoes(echo.replace(">ContractsOrShares<", ">EqualQuantity<"), "RB1", written)
    assert not fa_xml.group_matches(echo.replace("<amount>4.0<", "<amount>5.0<"), "RB1", {"DU1": 3, "DU2": 4})
    # the same group in another form is not one text equal to it: it is parsed, and still matches
    assert not fa_xml._echoes(echo.replace("<amount>4.0<", "<amount>4<"), "RB1", written)
    assert fa_xml.group_matches(
        echo.replace("<amount>4.0<", "<amount>4<"), "RB1", {"DU1": 3, "DU2": 4}, written=written
    )
