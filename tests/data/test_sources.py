"""Reading documents from local files, directories, globs and a local HF dataset folder."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixopt.config import DomainSource
from mixopt.data.sources import read_documents, source_fingerprint
from mixopt.errors import DataError


def _jsonl(path, docs, field="text"):
    import json

    path.write_text("".join(json.dumps({field: d}) + "\n" for d in docs))


def test_jsonl_file_with_custom_text_field(tmp_path, write_jsonl):
    write_jsonl(tmp_path / "a.jsonl", ["first doc", "second doc"], field="body")
    assert read_documents("d", DomainSource(path=str(tmp_path / "a.jsonl"), text_field="body")) == [
        "first doc", "second doc"]


def test_parquet_file(tmp_path):
    pq.write_table(pa.table({"content": ["p one", "p two", "p three"], "n": [1, 2, 3]}), tmp_path / "x.parquet")
    docs = read_documents("d", DomainSource(path=str(tmp_path / "x.parquet"), text_field="content"))
    assert docs == ["p one", "p two", "p three"]


def test_directory_reads_text_files_one_document_each_in_sorted_order(tmp_path, write_jsonl):
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_text("bee")
    (tmp_path / "a.md").write_text("ay")
    (tmp_path / "sub" / "c.py").write_text("print('c')")
    (tmp_path / "ignored.bin").write_bytes(b"\x00\x01")
    write_jsonl(tmp_path / "sub" / "d.jsonl", ["dee1", "dee2"])
    assert read_documents("d", DomainSource(path=str(tmp_path))) == ["ay", "bee", "print('c')", "dee1", "dee2"]


def test_glob(tmp_path):
    for name in ("x1.txt", "x2.txt", "y.txt"):
        (tmp_path / name).write_text(name)
    assert read_documents("d", DomainSource(path=str(tmp_path / "x*.txt"))) == ["x1.txt", "x2.txt"]


def test_filters_min_chars_and_max_documents(tmp_path, write_jsonl):
    write_jsonl(tmp_path / "a.jsonl", ["tiny", "long enough 1", "no", "long enough 2", "long enough 3"])
    src = DomainSource(path=str(tmp_path / "a.jsonl"), min_chars=10, max_documents=2)
    assert read_documents("d", src) == ["long enough 1", "long enough 2"]


def test_local_hf_dataset_folder(tmp_path, write_jsonl):
    write_jsonl(tmp_path / "hfdata" / "train.jsonl", ["hf one", "hf two"])
    docs = read_documents("d", DomainSource(hf=str(tmp_path / "hfdata"), split="train"))
    assert sorted(docs) == ["hf one", "hf two"]


@pytest.mark.parametrize(
    "setup, src_kwargs, message",
    [
        (lambda p: None, {"path": "missing.jsonl"}, "does not exist"),
        (lambda p: (p / "empty.jsonl").write_text(""), {"path": "empty.jsonl"}, "has no documents"),
        (lambda p: (p / "emptydir").mkdir(), {"path": "emptydir"}, "has no supported files"),
        (lambda p: None, {"path": "nothing*.jsonl"}, "no supported files match"),
        (lambda p: _jsonl(p / "a.jsonl", ["x"]), {"path": "a.jsonl", "text_field": "body"}, "no text field 'body'"),
        (lambda p: _jsonl(p / "a.jsonl", ["ab", "cd"]), {"path": "a.jsonl", "min_chars": 5}, "no documents left"),
        (lambda p: (p / "bad.jsonl").write_text('{"text": "ok"}\n{broken\n'), {"path": "bad.jsonl"}, "bad.jsonl:2"),
        (lambda p: pq.write_table(pa.table({"t": ["a"]}), p / "x.parquet"), {"path": "x.parquet"}, "no text field"),
    ],
)
def test_bad_sources_are_one_line_errors_naming_domain_and_file(tmp_path, setup, src_kwargs, message):
    setup(tmp_path)
    src_kwargs = {**src_kwargs, "path": str(tmp_path / src_kwargs["path"])}
    with pytest.raises(DataError, match=message) as err:
        read_documents("mydomain", DomainSource(**src_kwargs))
    assert "'mydomain'" in str(err.value) and "\n" not in str(err.value)


def test_fingerprint_changes_with_content_and_settings(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "a.jsonl", ["one", "two"])
    src = DomainSource(path=str(path))
    fp = source_fingerprint("d", src)
    assert source_fingerprint("d", src) == fp
    assert source_fingerprint("d", DomainSource(path=str(path), min_chars=3)) != fp
    write_jsonl(path, ["one", "three"])
    assert source_fingerprint("d", src) != fp


def test_json_array_file(tmp_path):
    (tmp_path / "a.json").write_text('[{"text": "one"}, {"text": "two"}]')
    assert read_documents("d", DomainSource(path=str(tmp_path / "a.json"))) == ["one", "two"]
