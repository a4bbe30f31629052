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


def test_format_text_reads_files_of_any_extension_as_plain_text(tmp_path):
    (tmp_path / "ls.man").write_text(".TH LS 1\nlist directory contents")
    (tmp_path / "README").write_text("no extension at all")
    (tmp_path / "notes.txt").write_text("a txt file")
    with pytest.raises(DataError, match="set format: text"):  # by extension, a .man file is not readable
        read_documents("man", DomainSource(path=str(tmp_path / "ls.man")))
    assert read_documents("man", DomainSource(path=str(tmp_path), format="text")) == [
        "no extension at all", ".TH LS 1\nlist directory contents", "a txt file"]
    assert read_documents("man", DomainSource(path=str(tmp_path / "*.man"), format="text")) == [
        ".TH LS 1\nlist directory contents"]


def test_format_text_names_the_file_that_is_not_utf8(tmp_path):
    (tmp_path / "ok.man").write_text("fine")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(DataError, match=r"domain 'man': .*logo\.png is not UTF-8 text \(byte 0"):
        read_documents("man", DomainSource(path=str(tmp_path), format="text"))
    assert read_documents("man", DomainSource(path=str(tmp_path), format="text", exclude=["*.png"])) == ["fine"]


def test_format_jsonl_reads_record_files_without_the_extension(tmp_path, write_jsonl):
    write_jsonl(tmp_path / "part-00000", ["one", "two"])
    assert read_documents("d", DomainSource(path=str(tmp_path), format="jsonl")) == ["one", "two"]


def test_exclude_patterns_are_relative_to_the_source_folder_or_absolute(tmp_path):
    (tmp_path / "drafts").mkdir()
    (tmp_path / "keep.txt").write_text("keep")
    (tmp_path / "drafts" / "old.txt").write_text("draft")
    (tmp_path / "skip.txt").write_text("skip")
    src = DomainSource(path=str(tmp_path), exclude=["drafts/*", str(tmp_path / "skip.txt")])
    assert read_documents("d", src) == ["keep"]
    glob_src = DomainSource(path=str(tmp_path / "**" / "*.txt"), exclude=["drafts/*"])
    assert read_documents("d", glob_src) == ["keep", "skip"]
    with pytest.raises(DataError, match=r"domain 'd': exclude \['\*'\] drops every one of the 3 file"):
        read_documents("d", DomainSource(path=str(tmp_path), exclude=["*"]))


def test_format_and_exclude_change_the_data_key_and_fingerprint(tmp_path, make_cfg):
    (tmp_path / "a.txt").write_text("alpha text")
    (tmp_path / "b.txt").write_text("beta text")
    base = make_cfg(tmp_path / "ws", {"a": {"path": str(tmp_path)}, "b": {"path": str(tmp_path / "b.txt")}})
    keys, prints = {base.data_key}, {source_fingerprint("a", base.domains["a"])}
    for change in ({"format": "text"}, {"exclude": ["b.txt"]}):
        cfg = base.model_copy(deep=True)
        cfg.domains["a"] = DomainSource(path=str(tmp_path), **change)
        keys.add(cfg.data_key)
        prints.add(source_fingerprint("a", cfg.domains["a"]))
    assert len(keys) == 3 and len(prints) == 3
