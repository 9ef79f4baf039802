"""The Volatility 3 symbol table written from layout.json and System.map (pure logic)."""

from __future__ import annotations

import base64
import json

from kernel_rules.domain.introspect import isf

LAYOUT = {
    "kernel": {"banner": "Linux version 6.1.192 (kernel_rules@kernel_rules) #1\n"},
    "structs": {
        "task_struct": {
            "size": 6208,
            "fields": {
                "pid": {"offset": 696, "size": 4},
                "comm": {"offset": 1168, "size": 16},
                "tasks": {"offset": 560, "size": 16},
                "extra": {"offset": 2000, "size": 24},
                "signal.flags": {"offset": 9, "size": 4},
            },
        },
        "list_head": {
            "size": 16,
            "fields": {"next": {"offset": 0, "size": 8}, "prev": {"offset": 8, "size": 8}},
        },
    },
}
SYSTEM_MAP = (
    "ffffffff81000000 T _text\n"
    "ffffffff8183b100 D linux_banner\n"
    "ffffffff81a23600 D init_task\n"
    "ffffffff81a23600 d init_task\n"
)


def test_members_are_typed_and_unknown_members_are_bytes():
    doc = isf.isf_document(LAYOUT, SYSTEM_MAP)
    task = doc["user_types"]["task_struct"]
    assert task["size"] == 6208
    assert task["fields"]["pid"] == {"offset": 696, "type": {"kind": "base", "name": "int"}}
    assert task["fields"]["comm"]["type"] == {
        "kind": "array",
        "count": 16,
        "subtype": {"kind": "base", "name": "char"},
    }
    assert task["fields"]["tasks"]["type"] == {"kind": "struct", "name": "list_head"}
    assert task["fields"]["extra"]["type"]["count"] == 24  # a BUILD-file member: its bytes
    assert "signal.flags" not in task["fields"]
    assert doc["user_types"]["list_head"]["fields"]["next"]["type"]["kind"] == "pointer"


def test_symbols_banner_and_the_types_volatility_requires():
    doc = isf.isf_document(LAYOUT, SYSTEM_MAP)
    assert doc["symbols"]["init_task"] == {
        "address": 0xFFFFFFFF81A23600,
        "type": {"kind": "struct", "name": "task_struct"},
    }
    banner = base64.b64decode(doc["symbols"]["linux_banner"]["constant_data"])
    assert banner == LAYOUT["kernel"]["banner"].encode() + b"\0"
    for name in isf.REQUIRED_TYPES:
        assert name in doc["user_types"], name
    assert doc["metadata"]["format"] == isf.ISF_FORMAT
    for kind in ("pointer", "long unsigned int", "char", "int"):
        assert kind in doc["base_types"]


def test_the_same_inputs_give_the_same_bytes(tmp_path):
    (tmp_path / "layout.json").write_text(json.dumps(LAYOUT))
    (tmp_path / "System.map").write_text(SYSTEM_MAP)
    outs = []
    for n in (1, 2):
        out = tmp_path / f"isf{n}.json"
        isf.main([str(tmp_path / "layout.json"), str(tmp_path / "System.map"), str(out)])
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
