"""The fake's kept group texts: whatever it holds, it writes and reads documents as a fresh parse would.

GroupTexts writes out only groups that changed and takes back a replaceFA's groups it holds the
text of without parsing them; the answer must be the same as writing every group afresh and
parsing every document whole. The expected side here is built with ElementTree alone.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from hypothesis import given, settings
from hypothesis import strategies as st

from venues.ib_fa.fake_gateway.fa_groups import FaGroup, GroupTexts, fa_groups_to_xml, replacement_groups

ACCOUNTS = [f"DU{1000 + k}" for k in range(8)]
NAMES = ["Clients", "RB1", "RB2", "A b", "R&D"]
METHODS = ["ContractsOrShares", "Equal", "EqualQuantity"]

members = st.lists(
    st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from([0.0, 1.0, 2.5, 10.0, 7.25])), min_size=1, max_size=5
)
group_sets = st.dictionaries(st.sampled_from(NAMES), st.tuples(st.sampled_from(METHODS), members), max_size=4)


def _groups(spec: dict) -> list[FaGroup]:
    return [FaGroup(name, method, list(ms)) for name, (method, ms) in spec.items()]


def _read(xml: str) -> list[tuple[str, str, list[tuple[str, float]]]]:
    out = []
    for g in ET.fromstring(xml.strip()).iter("Group"):
        ms = [(a.findtext("acct").strip(), float(a.findtext("amount") or 0)) for a in g.iter("Account")]
        out.append((g.findtext("name").strip(), g.findtext("defaultMethod").strip(), ms))
    return out


def _rewrite(xml: str, how: str, name: str, method: str, ms: list) -> str:
    """The document as a client sends it back: as it came, with one group added by text, or re-laid out."""
    if how == "as_read":
        return xml
    if how == "spliced":
        accounts = "".join(f"<Account><acct>{a}</acct><amount>{q:.1f}</amount></Account>" for a, q in ms)
        group = (
            f'<Group><name>N{escape(name)}</name><defaultMethod>{method}</defaultMethod><ListOfAccts varName="list">'
        )
        return xml.replace("</ListOfGroups>", f"{group}{accounts}</ListOfAccts></Group></ListOfGroups>")
    root = ET.fromstring(xml.strip())
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def _as_parsed(groups: list[FaGroup]) -> list[tuple[str, str, list[tuple[str, float]]]]:
    return [(g.name, g.method, list(g.members)) for g in groups]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(group_sets, st.sampled_from(["as_read", "spliced", "indented"]), st.sampled_from(NAMES), members),
        min_size=1,
        max_size=5,
    )
)
def test_a_session_of_reads_and_writes_sees_what_fresh_serialization_and_parsing_would(steps):
    texts = GroupTexts()
    held = {}
    for spec, how, name, ms in steps:
        held.update({g.name: g for g in _groups(spec)})
        written = texts.to_xml(held.values())
        # what the fake writes out: every group it holds, as written afresh, amounts to one decimal
        assert written == fa_groups_to_xml(held.values())
        assert [(n, m) for n, m, _ in _read(written)] == [(g.name, g.method) for g in held.values()]
        sent = _rewrite(written, how, name, "ContractsOrShares", ms)
        taken = texts.from_xml(sent)
        assert _as_parsed(taken) == _read(sent)
        held = {g.name: g for g in taken}


def test_a_group_changed_in_place_is_written_as_it_is_now():
    texts = GroupTexts()
    group = FaGroup("G", "ContractsOrShares", [("DU1", 3.0)])
    texts.to_xml([group])
    group.members.append(("DU2", 4.0))
    assert _read(texts.to_xml([group])) == [("G", "ContractsOrShares", [("DU1", 3.0), ("DU2", 4.0)])]


def test_a_document_cut_inside_a_group_is_refused_as_a_whole_parse_refuses_it():
    texts = GroupTexts()
    xml = texts.to_xml([FaGroup("G", "ContractsOrShares", [("DU1", 3.0)])])
    broken = xml.replace("<amount>3.0</amount>", "<amount><!-- </Group> -->3.0</amount>", 1)
    assert _read(broken) == [("G", "ContractsOrShares", [("DU1", 3.0)])]  # a comment: still one group
    assert _as_parsed(texts.from_xml(broken)) == _read(broken)
    code, text = replacement_groups("DF1", ["DF1", "DU1"], 1, xml.replace("</Group>", "</Grup>"), texts)
    assert code == 321 and "invalid FA XML" in text


def test_a_kept_group_is_still_checked_against_the_login_accounts():
    texts = GroupTexts()
    xml = texts.to_xml([FaGroup("G", "ContractsOrShares", [("DU1", 3.0), ("DU2", 1.0)])])
    assert isinstance(replacement_groups("DF1", ["DF1", "DU1", "DU2"], 1, xml, texts), list)
    code, text = replacement_groups("DF1", ["DF1", "DU1"], 1, xml, texts)
    assert code == 321 and "DU2" in text
