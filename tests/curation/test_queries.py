"""refvps queries: offline templates, taxonomy discovery, and the local-LLM path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from refvps.curation.queries import (
    QUERY_COLUMNS,
    Concept,
    QueryTemplates,
    find_taxonomy,
    find_templates,
    generate_queries,
    load_taxonomy,
    load_templates,
    parse_llm_queries,
    query_key,
    query_problem,
)
from refvps.errors import DatasetError
from refvps.progress import Progress

from .conftest import run_cli

REPO = Path(__file__).resolve().parents[2]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == QUERY_COLUMNS
        return list(reader)


def test_offline_queries_are_deterministic_and_complete(tmp_path, capsys):
    out_a, out_b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert run_cli(capsys, "queries", "--per-concept", "4", "--out", str(out_a))[0] == 0
    assert run_cli(capsys, "queries", "--per-concept", "4", "--out", str(out_b))[0] == 0
    assert out_a.read_bytes() == out_b.read_bytes()
    rows = read_rows(out_a)
    taxonomy = json.loads((REPO / "annotations" / "taxonomy.json").read_text())
    concepts = [
        (c["id"], k["id"], next(look for look in k["phrasing"]["looks"] if len(look.split()) > 1))
        for c in taxonomy["categories"]
        for k in c["concepts"]
    ]
    assert len(rows) == 4 * len(concepts)
    by_concept: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_concept.setdefault(row["concept"], []).append(row)
    for category, concept, first_look in concepts:
        mine = by_concept[concept]
        assert [r["category"] for r in mine] == [category] * 4
        assert mine[0]["query"] == first_look  # the first way of naming it (in two words or more) comes first
        assert {r["source"] for r in mine} == {"template"}


def _bag(query: str) -> frozenset[str]:
    """A naive normalisation written here: lower case, letters only, small words dropped, a plural
    s and British -our folded, word order ignored."""
    small = {"a", "an", "the", "of", "in", "on", "at", "to", "into", "with", "from", "over", "by", "for", "and"}
    words = "".join(ch if ch.isalnum() else " " for ch in query.lower()).split()
    folded = {w.replace("colour", "color").removesuffix("s") for w in words if w not in small}
    return frozenset(folded)


def test_queries_are_what_a_person_would_type_at_every_k():
    """No duplicate after normalisation, no word twice, nothing shorter than two words, and every
    concept gets its k queries, for every -k up to 20."""
    concepts = load_taxonomy(find_taxonomy())
    templates = load_templates(find_templates())
    for k in range(1, 21):
        rows = generate_queries(concepts, templates, k)
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.concept] = counts.get(row.concept, 0) + 1
        assert counts == {c.id: k for c in concepts}, k
        bags = [_bag(row.query) for row in rows]
        assert len(set(bags)) == len(bags), k  # "glass shattering" and "shattering glass" are one query
        for row in rows:
            words = row.query.lower().split()
            assert len(words) >= 2, row
            assert len(set(words)) == len(words), row  # no "timelapse timelapse"
            spelled_one_way = row.query.lower().replace("time lapse", "timelapse").split()
            assert len(set(spelled_one_way)) == len(spelled_one_way), row  # no "timelapse time lapse camera"
            assert query_key(row.query) == query_key(" ".join(reversed(spelled_one_way)))


def test_a_word_written_apart_is_still_the_same_word():
    """A taxonomy of one's own with "time lapse" beside "timelapse": the stacked suffix is refused
    and the two spellings are one query."""
    taxonomy = [
        Concept(
            "clouds", "clouds timelapse", "sky", looks=("clouds timelapse", "clouds moving"), footage=("time lapse",)
        )
    ]
    queries = [r.query for r in generate_queries(taxonomy, QueryTemplates(patterns=["{look}", "{look} {footage}"]), 9)]
    assert queries == [
        "clouds timelapse",
        "clouds moving",
        "clouds moving time lapse",
    ]  # no "clouds timelapse time lapse"
    assert query_problem("clouds timelapse time-lapse") == "a word repeated"


def test_each_concept_is_filmed_its_own_way():
    """Footage types come from the concept: no aurora in slow motion, no glass shattering in timelapse."""
    rows = generate_queries(load_taxonomy(find_taxonomy()), load_templates(find_templates()), 20)
    by = {}
    for row in rows:
        by.setdefault(row.concept, []).append(row.query)
    assert not any("slow motion" in q for q in by["aurora_shimmering"])
    assert not any("timelapse" in q for q in by["glass_shattering"] + by["wine_glass_breaking"])
    assert any("timelapse" in q for q in by["candle_melting"]) and any("slow motion" in q for q in by["water_splash"])


def test_the_shipped_taxonomy_gives_every_concept_phrasing_material():
    concepts = load_taxonomy(find_taxonomy())
    templates = load_templates(find_templates())
    for concept in concepts:
        assert len(concept.looks) >= 3 and len(concept.places) >= 2 and len(concept.footage) >= 2, concept.id
    assert set(templates.category_footage) == {c.category for c in concepts}


def test_the_cli_reports_queries_per_concept(tmp_path, capsys):
    out = tmp_path / "q.csv"
    code, stdout, _ = run_cli(
        capsys, "queries", "-k", "7", "--concept", "fire", "--concept", "ice_melting", "--out", str(out), "--json"
    )
    summary = json.loads(stdout)
    assert code == 0 and summary["per_concept"] == {"ice_melting": 7, "fire": 7} and summary["short"] == {}
    code, stdout, _ = run_cli(capsys, "queries", "-k", "7", "--concept", "fire", "--out", str(out))
    assert code == 0 and "per concept: 7 to 7" in stdout


def test_explicit_taxonomy_wins_and_synonyms_in_it_are_used(tmp_path, capsys):
    taxonomy = tmp_path / "tax.json"
    taxonomy.write_text(
        json.dumps(
            {
                "categories": [
                    {
                        "id": "cat",
                        "name": "Cat",
                        "concepts": [{"id": "lava_lamp", "name": "lava lamp", "synonyms": ["wax blobs rising"]}],
                    }
                ]
            }
        )
    )
    out = tmp_path / "q.csv"
    code, stdout, _ = run_cli(capsys, "queries", "--taxonomy", str(taxonomy), "-k", "3", "--out", str(out), "--json")
    assert code == 0 and json.loads(stdout)["concepts"] == 1
    assert [r["query"] for r in read_rows(out)] == ["lava lamp", "wax blobs rising", "lava lamp video"]


def test_taxonomy_found_from_another_folder_and_via_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no annotations/ here: the shipped file is found
    assert find_taxonomy().resolve() == (REPO / "annotations" / "taxonomy.json").resolve()
    local = tmp_path / "annotations"
    local.mkdir()
    (local / "taxonomy.json").write_text('{"categories": []}')
    assert find_taxonomy().resolve() == (local / "taxonomy.json").resolve()  # a local benchmark's own file
    other = tmp_path / "elsewhere.json"
    other.write_text('{"categories": []}')
    monkeypatch.setenv("REFVPS_TAXONOMY", str(other))
    assert find_taxonomy() == other


def test_missing_taxonomy_is_a_clear_error(tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "queries", "--taxonomy", str(tmp_path / "nope.json"), "--out", str(tmp_path / "q.csv")
    )
    assert code == 2
    assert "Error: concept taxonomy not found" in err and "--taxonomy" in err
    assert "Traceback" not in err


def test_malformed_taxonomy_names_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"categories": [{"id": "x", "concepts": [{"name": "no id"}]}]}')
    code, _, err = run_cli(capsys, "queries", "--taxonomy", str(bad), "--out", str(tmp_path / "q.csv"))
    assert code == 1 and str(bad) in err and "needs an 'id'" in err


def test_parse_llm_queries_is_defensive():
    text = """Sure, here are 5 search queries for candle melting:
1. "Wax candle melting timelapse"
2) candle wax dripping close up
- melting candle
* Melting Candle
Query 5: birthday candle burning down slowly on a cake
<|endoftext|> junk
see https://example.com/video
3. a b c d e f g h i j k l m n o p
12345 67890 !!!
"""
    assert parse_llm_queries(text) == [
        "Wax candle melting timelapse",
        "candle wax dripping close up",
        "melting candle",
        "birthday candle burning down slowly on a cake",
    ]
    assert parse_llm_queries("") == []


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    """A random GPT-2 with a word-level vocabulary, built from a config: no download."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = (
        "smoke rising slow motion close up fire candle wax melting ice water wave video timelapse "
        "glass shattering flame burning drops steam"
    ).split()
    vocab = {"[UNK]": 0, "[PAD]": 1, "<eos>": 2, "\n": 3, "1.": 4, "-": 5, '"': 6}
    for word in words:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", eos_token="<eos>"
    )
    config = transformers.GPT2Config(
        vocab_size=len(vocab), n_positions=256, n_embd=32, n_layer=2, n_head=2, bos_token_id=2, eos_token_id=2
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


def test_llm_queries_from_a_local_model(tmp_path, capsys, tiny_llm):
    out = tmp_path / "q.csv"
    args = [
        "queries",
        "--llm",
        str(tiny_llm),
        "-k",
        "3",
        "--concept",
        "candle_melting",
        "--concept",
        "fire",
        "--concept",
        "wave breaking",
        "--out",
        str(out),
    ]
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    rows = read_rows(out)
    templates = [r for r in rows if r["source"] == "template"]
    llm = [r for r in rows if r["source"] == "llm"]
    assert len(templates) == 9
    assert llm, "the random model's word soup still yields well-formed lines"
    assert {r["concept"] for r in rows} == {"candle_melting", "fire", "wave_breaking"}
    for concept in ("candle_melting", "fire", "wave_breaking"):
        assert sum(r["concept"] == concept and r["source"] == "llm" for r in rows) <= 3
    # De-duplicated against each other and against the template queries; each one is plain text.
    keys = [query_key(r["query"]) for r in rows]
    assert len(keys) == len(set(keys))
    for row in llm:
        assert 2 <= len(row["query"].split()) <= 10 and "\n" not in row["query"] and "[" not in row["query"]
    # Rows are grouped by concept in taxonomy order, templates first.
    order = [r["concept"] for r in rows]
    assert order == sorted(order, key=["candle_melting", "wave_breaking", "fire"].index)
    # Seeded: the same command gives the same file.
    again = tmp_path / "again.csv"
    run_cli(capsys, *args[:-1], str(again))
    assert again.read_bytes() == out.read_bytes()


def test_llm_run_resumes_and_each_concept_is_seeded_on_its_own(tmp_path, tiny_llm, monkeypatch):
    from refvps.curation import queries as q

    wanted = ("candle_melting", "fire", "wave_breaking")
    concepts = [c for c in load_taxonomy(find_taxonomy()) if c.id in wanted]
    straight = q.llm_queries(concepts, tiny_llm, per_concept=3)

    asked = []
    real_generate = q._generate
    monkeypatch.setattr(q, "_generate", lambda *args: asked.append(args[3]) or real_generate(*args))
    cache = tmp_path / "cache.json"

    class CtrlCAfterTheFirst(Progress):
        def advance(self, stage, n=1, *, note=None):
            if note == concepts[0].id:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        q.llm_queries(concepts, tiny_llm, per_concept=3, cache=cache, progress=CtrlCAfterTheFirst())
    assert list(json.loads(cache.read_text())) == [concepts[0].id]  # saved before the interruption
    asked.clear()
    assert q.llm_queries(concepts, tiny_llm, per_concept=3, cache=cache) == straight
    assert len(asked) == 2  # only the concepts the first run had not reached
    # A concept asked on its own gets the same model output as within the whole list.
    alone = tmp_path / "alone.json"
    q.llm_queries(concepts[2:], tiny_llm, per_concept=3, cache=alone)
    assert json.loads(alone.read_text())[concepts[2].id] == json.loads(cache.read_text())[concepts[2].id]


def test_the_cli_removes_its_model_cache_once_the_csv_is_written(tmp_path, capsys, tiny_llm):
    out = tmp_path / "q.csv"
    assert run_cli(capsys, "queries", "--llm", str(tiny_llm), "-k", "2", "--concept", "fire", "--out", str(out))[0] == 0
    assert out.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["q.csv"]


def test_llm_folder_missing_is_a_clear_error(tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "queries", "--llm", str(tmp_path / "none"), "--concept", "fire", "--out", str(tmp_path / "q.csv")
    )
    assert code == 2 and "model folder not found" in err


def test_per_concept_must_be_positive():
    from refvps.errors import UsageError

    with pytest.raises(UsageError):
        generate_queries(load_taxonomy(find_taxonomy())[:1], load_templates(find_templates()), 0)


@pytest.mark.parametrize(
    "field, value",
    [
        ("category_footage", {"motion_patterns": "slow motion"}),
        ("category_footage", "slow motion"),
        ("default_footage", "video"),
    ],
)
def test_a_footage_list_written_as_a_string_is_an_error_naming_the_file(tmp_path, field, value):
    path = tmp_path / "templates.json"
    path.write_text(json.dumps({"patterns": ["{look} {footage}"], field: value}))
    with pytest.raises(DatasetError, match=f"{field}.* must be a list of phrases") as caught:
        load_templates(path)
    assert caught.value.path == path
