"""Search queries for every concept of the taxonomy (paper §4.1).

The paper asked ChatGPT for concrete concepts and several search queries each. Here the default is
offline and deterministic: each concept of ``annotations/taxonomy.json`` carries its own phrasing
material -- ``looks`` (how a person names what is seen: "candle wax dripping"), ``places`` (where
it happens: "on a table") and ``footage`` (the kinds of video that show it: "timelapse" for a
melting candle, "slow motion" for shattering glass, never the other way round). The queries are
combinations of these, in the order of the ``patterns`` of ``annotations/query_templates.json``
(the looks alone first, then look + footage, look + place, look + place + footage), taken
round-robin so that the first few queries of a concept are as different as possible.

A query is kept only if a person could have typed it: at least two words, no word twice, not too
long, and not the same bag of words as a query already chosen (``glass shattering`` and
``shattering glass`` are one query; see :func:`query_key`). ``llm_queries`` adds queries proposed
by a local text-generation model (any transformers causal LM saved with ``save_pretrained``),
parsed defensively and held to the same rules.

Output is a CSV with columns ``category, concept, query, source`` (source: ``template`` or ``llm``).
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from refvps.curation.workspace import read_json_member
from refvps.errors import ConfigError, DatasetError, UsageError
from refvps.fileio import atomic_write_json, atomic_write_text, read_json
from refvps.progress import NO_PROGRESS, Progress
from refvps.resources import annotations_dir

QUERY_COLUMNS = ("category", "concept", "query", "source")
TAXONOMY_RELATIVE = Path("annotations") / "taxonomy.json"
TEMPLATES_RELATIVE = Path("annotations") / "query_templates.json"


@dataclass(frozen=True)
class Concept:
    """One concept of the taxonomy, with the category it belongs to."""

    id: str
    name: str
    category: str
    category_name: str = ""
    category_definition: str = ""
    synonyms: tuple[str, ...] = ()
    looks: tuple[str, ...] = ()  # how a person names what is seen
    places: tuple[str, ...] = ()  # where it happens
    footage: tuple[str, ...] = ()  # the kinds of video that show it


@dataclass(frozen=True)
class QueryRow:
    category: str
    concept: str
    query: str
    source: str  # "template" or "llm"


@dataclass
class QueryTemplates:
    """How the phrasing material is combined (``annotations/query_templates.json``)."""

    patterns: list[str] = field(default_factory=lambda: ["{look}", "{look} {footage}", "{look} {place}"])
    default_footage: list[str] = field(default_factory=lambda: ["video", "close up", "footage"])
    category_footage: dict[str, list[str]] = field(default_factory=dict)
    max_words: int = 8


# -- finding and reading the taxonomy -------------------------------------------------------------
def _annotation_candidates(relative: Path) -> list[Path]:
    """Where an ``annotations/`` file may be: beside the working directory or a parent of it (a
    benchmark repository being extended), then the folder shipped with refvps."""
    candidates: list[Path] = []
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        candidates.append(folder / relative)
    try:  # the shipped folder (refvps.resources finds it in a wheel and in a source checkout)
        candidates.append(annotations_dir() / relative.relative_to("annotations"))
    except ConfigError:
        pass
    return candidates


def find_annotation_file(relative: Path, explicit: str | Path | None, *, what: str, option: str, env: str) -> Path:
    """Resolve an annotations file: an explicit path always wins, then ``$env``, then the search."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(f"{what} not found: {path}", hint=f"check the path given to {option}", path=path)
        return path
    if os.environ.get(env):
        path = Path(os.environ[env])
        if not path.is_file():
            raise UsageError(f"{what} not found: {path} (from ${env})", hint=f"fix or unset ${env}", path=path)
        return path
    for candidate in _annotation_candidates(relative):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"{what} not found: looked for {relative} in the current folder, its parents and the refvps source tree",
        hint=f"pass it explicitly with {option} PATH (or set ${env})",
    )


def find_taxonomy(explicit: str | Path | None = None) -> Path:
    return find_annotation_file(
        TAXONOMY_RELATIVE, explicit, what="concept taxonomy", option="--taxonomy", env="REFVPS_TAXONOMY"
    )


def find_templates(explicit: str | Path | None = None) -> Path:
    return find_annotation_file(
        TEMPLATES_RELATIVE, explicit, what="query templates", option="--templates", env="REFVPS_QUERY_TEMPLATES"
    )


def load_taxonomy(path: str | Path) -> list[Concept]:
    """The concepts of a taxonomy file, in file order; a malformed file is a :class:`DatasetError`."""
    path = Path(path)
    categories = read_json_member(
        path,
        "categories",
        list,
        what="concept taxonomy",
        hint='write {"categories": [{"id": ..., "name": ..., "concepts": [{"id": ..., "name": ...}]}]}',
    )
    concepts: list[Concept] = []
    seen: set[str] = set()
    for ci, category in enumerate(categories):
        if not isinstance(category, dict) or not isinstance(category.get("concepts"), list) or not category.get("id"):
            raise DatasetError(
                f"{path}: category #{ci} needs an 'id' and a 'concepts' list", hint="fix that entry", path=path
            )
        for ki, concept in enumerate(category["concepts"]):
            if not isinstance(concept, dict) or not concept.get("id"):
                raise DatasetError(
                    f"{path}: concept #{ki} of category {category['id']!r} needs an 'id'",
                    hint="fix that entry",
                    path=path,
                )
            cid = str(concept["id"])
            if cid in seen:
                raise DatasetError(
                    f"{path}: concept id {cid!r} appears twice", hint="concept ids must be unique", path=path
                )
            seen.add(cid)
            concepts.append(_concept(concept, category, path))
    return concepts


def _strings(entry: dict[str, Any], key: str, path: Path) -> tuple[str, ...]:
    values = entry.get(key) or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise DatasetError(
            f"{path}: concept {entry.get('id')!r}: {key!r} must be a list of strings", hint="fix that entry", path=path
        )
    return tuple(v.strip() for v in values if v.strip())


def _concept(entry: dict[str, Any], category: dict[str, Any], path: Path) -> Concept:
    cid = str(entry["id"])
    phrasing = entry.get("phrasing") or {}
    if not isinstance(phrasing, dict):
        raise DatasetError(
            f"{path}: concept {cid!r}: 'phrasing' must be an object",
            hint='write "phrasing": {"looks": [...], "places": [...], "footage": [...]}',
            path=path,
        )
    phrasing = {**phrasing, "id": cid}
    return Concept(
        id=cid,
        name=str(entry.get("name") or cid.replace("_", " ")),
        category=str(category["id"]),
        category_name=str(category.get("name") or category["id"]),
        category_definition=str(category.get("definition") or ""),
        synonyms=_strings(entry, "synonyms", path),
        looks=_strings(phrasing, "looks", path),
        places=_strings(phrasing, "places", path),
        footage=_strings(phrasing, "footage", path),
    )


def concept_index(concepts: Iterable[Concept]) -> dict[str, Concept]:
    """Concepts by id and by name (case-insensitive), so users may write either."""
    index: dict[str, Concept] = {}
    for concept in concepts:
        index[concept.id] = concept
        index.setdefault(concept.id.casefold(), concept)
        index.setdefault(concept.name.casefold(), concept)
    return index


def lookup_concept(index: dict[str, Concept], value: str) -> Concept | None:
    """The concept a user means by ``value`` (its id or its name, in any case), or None."""
    return index.get(value) or index.get(value.strip().casefold())


def require_concept(index: dict[str, Concept], value: str, *, where: str = "", path: Path | None = None) -> Concept:
    """:func:`lookup_concept`, or a usage error (``where`` says where the value came from)."""
    concept = lookup_concept(index, value)
    if concept is None:
        raise UsageError(
            f"{where}unknown concept {value!r}",
            hint="use a concept id or name of the taxonomy (annotations/taxonomy.json; refvps queries lists them)",
            path=path,
        )
    return concept


def select_concepts(concepts: Sequence[Concept], wanted: Iterable[str], *, path: Path | None = None) -> list[Concept]:
    """The concepts named in ``wanted`` (ids or names), in taxonomy order; unknown names are one
    usage error listing them all (``path``: the taxonomy they were looked up in)."""
    index = concept_index(concepts)
    found = {value: lookup_concept(index, value) for value in wanted}
    unknown = [value for value, concept in found.items() if concept is None]
    if unknown:
        raise UsageError(f"unknown concept(s): {', '.join(unknown)}", hint=f"use ids from {path or 'the taxonomy'}")
    ids = {concept.id for concept in found.values() if concept is not None}
    return [c for c in concepts if c.id in ids]


def optional_concept_index(taxonomy: str | Path | None = None) -> dict[str, Concept] | None:
    """:func:`concept_index` of the taxonomy, or None when none is given and none is found (then
    concepts cannot be checked); a taxonomy given explicitly must exist."""
    try:
        return concept_index(load_taxonomy(find_taxonomy(taxonomy)))
    except ConfigError:
        if taxonomy is not None:
            raise
        return None


def _word_list(value: object, path: Path, key: str) -> list[str]:
    """A list of footage phrases from the templates file; anything else is an error (a bare string
    would otherwise be read letter by letter)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DatasetError(
            f"{path}: '{key}' must be a list of phrases, not {value!r}",
            hint='write e.g. "default_footage": ["video", "slow motion"]',
            path=path,
        )
    return list(value)


def load_templates(path: str | Path) -> QueryTemplates:
    path = Path(path)
    data = read_json(path, what="query templates")
    if not isinstance(data, dict) or not isinstance(data.get("patterns"), list):
        raise DatasetError(
            f"{path} must hold an object with a 'patterns' list",
            hint='write {"patterns": ["{look}", "{look} {footage}", ...]} (see annotations/query_templates.json)',
            path=path,
        )
    category_footage = data.get("category_footage") or {}
    if not isinstance(category_footage, dict):
        category_footage = {"": category_footage}  # reported below as a non-list value
    templates = QueryTemplates(
        patterns=[str(p) for p in data["patterns"]],
        default_footage=_word_list(data.get("default_footage") or ["video"], path, "default_footage"),
        category_footage={
            str(k): _word_list(v, path, f"category_footage.{k}" if k else "category_footage")
            for k, v in category_footage.items()
        },
        max_words=int(data.get("max_words") or 8),
    )
    for pattern in templates.patterns:
        unknown = set(re.findall(r"{(\w+)}", pattern)) - set(SLOTS)
        if "{look}" not in pattern or unknown:
            raise DatasetError(
                f"{path}: pattern {pattern!r} needs {{look}} and may use only {', '.join('{' + s + '}' for s in SLOTS)}",
                hint="write e.g. '{look} {footage}'",
                path=path,
            )
    return templates


# -- offline generator ----------------------------------------------------------------------------
SLOTS = ("look", "place", "footage")
_STOPWORDS = frozenset("a an the of in on at to into with from over by for and under through".split())
_SPELLING = (("colour", "color"), ("mould", "mold"), ("grey", "gray"))


def _stem(word: str) -> str:
    """A crude singular: enough to see "flames flickering" and "flame flickering" as one query."""
    for british, american in _SPELLING:
        word = word.replace(british, american)
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


# Words written apart or together: "time lapse" repeats "timelapse" ("fruit rotting timelapse time lapse camera").
_JOINED = ((re.compile(r"\btime[\s-]+lapse"), "timelapse"),)


def _words(text: str) -> list[str]:
    text = text.casefold()
    for apart, together in _JOINED:
        text = apart.sub(together, text)
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text)


def query_key(text: str) -> frozenset[str]:
    """The normalised bag of words two queries are compared by: lower case, punctuation and small
    words (a, the, in, ...) dropped, plurals and British spellings folded, order ignored.

    >>> query_key("Glass shattering") == query_key("the shattering of glasses")
    True
    """
    return frozenset(_stem(w) for w in _words(text) if w not in _STOPWORDS)


def normalize_query(text: str) -> str:
    """A query's text as written to the CSV: single spaces, no surrounding punctuation."""
    return re.sub(r"\s+", " ", text).strip(" \t.,;:!?\"'`")


def query_problem(text: str, max_words: int = 8) -> str | None:
    """Why a person would not type this query (None: they could)."""
    words = _words(text)
    if len(words) < 2:
        return "fewer than two words"
    if len(words) > max_words:
        return f"more than {max_words} words"
    stems = [_stem(w) for w in words]
    if len(set(words)) < len(words) or len(set(stems)) < len(stems):
        return "a word repeated"
    return None


def _material(concept: Concept, templates: QueryTemplates) -> dict[str, list[str]]:
    looks = list(dict.fromkeys([*concept.looks, concept.name, *concept.synonyms]))
    footage = list(concept.footage) or templates.category_footage.get(concept.category) or templates.default_footage
    return {"look": looks, "place": list(concept.places), "footage": list(footage)}


def candidate_queries(concept: Concept, templates: QueryTemplates) -> Iterable[str]:
    """Every combination of the concept's material, pattern by pattern; within a pattern the
    combinations go round-robin (sum of the indices first), so variety comes early."""
    material = _material(concept, templates)
    for pattern in templates.patterns:
        slots = [s for s in SLOTS if "{" + s + "}" in pattern]
        choices = [range(len(material[s])) for s in slots]
        for combo in sorted(itertools.product(*choices), key=lambda c: (sum(c), c)):
            text = pattern
            for slot, index in zip(slots, combo):
                text = text.replace("{" + slot + "}", material[slot][index])
            yield normalize_query(text)


def template_queries(
    concept: Concept, templates: QueryTemplates, per_concept: int, taken: set[frozenset[str]] | None = None
) -> list[str]:
    """The first ``per_concept`` acceptable queries of a concept, none with a bag of words in
    ``taken`` (which is updated: pass one set for all concepts to keep them apart)."""
    taken = set() if taken is None else taken
    out: list[str] = []
    for query in candidate_queries(concept, templates):
        key = query_key(query)
        if key in taken or query_problem(query, templates.max_words):
            continue
        taken.add(key)
        out.append(query)
        if len(out) >= per_concept:
            break
    return out


def generate_queries(concepts: Sequence[Concept], templates: QueryTemplates, per_concept: int = 5) -> list[QueryRow]:
    """``per_concept`` queries per concept (fewer where its material runs out: see
    :func:`count_by_concept`), none repeated across concepts."""
    if per_concept < 1:
        raise UsageError(f"--per-concept must be at least 1, got {per_concept}", hint="use e.g. --per-concept 5")
    rows: list[QueryRow] = []
    taken: set[frozenset[str]] = set()
    for concept in concepts:
        for query in template_queries(concept, templates, per_concept, taken):
            rows.append(QueryRow(concept.category, concept.id, query, "template"))
    return rows


def count_by_concept(rows: Iterable[QueryRow], concepts: Sequence[Concept]) -> dict[str, int]:
    """Queries per concept id, in taxonomy order (0 for a concept without any)."""
    counts = {c.id: 0 for c in concepts}
    for row in rows:
        counts[row.concept] = counts.get(row.concept, 0) + 1
    return counts


# -- local LLM ------------------------------------------------------------------------------------
_BULLET = re.compile(r"^\s*(?:[-*\u2022>#]+|\(?\d{1,2}\s*[.):\]-]|(?:query|search)\s*\d*\s*[:.-])\s*", re.IGNORECASE)
_ECHO_WORDS = ("search quer", "one per line", "concept:", "category:", "write ", "here are", "sure,", "queries")


def parse_llm_queries(text: str, *, max_words: int = 10, max_chars: int = 80) -> list[str]:
    """Queries found in free text from a language model, most defensively.

    Accepts numbered or bulleted lines, quoted strings, comma-free phrases; drops prompt echoes,
    URLs, special tokens, lines that are mostly not letters, and anything too long or too short.
    """
    queries: list[str] = []
    seen: set[frozenset[str]] = set()
    for raw in re.split(r"[\r\n]+", text or ""):
        line = raw.strip()
        # Remove list markers repeatedly ("1. - foo"), then quotes and trailing punctuation.
        for _ in range(3):
            line = _BULLET.sub("", line)
        line = line.strip().strip("\"'`\u201c\u201d\u2018\u2019").strip()
        line = re.sub(r"\s+", " ", line).strip(" .,;:!?")
        if not line:
            continue
        lower = line.casefold()
        if "http" in lower or "www." in lower or "<" in line or "[" in line or "|" in line or "{" in line:
            continue
        if any(word in lower for word in _ECHO_WORDS):
            continue
        words = line.split()
        if not (1 <= len(words) <= max_words) or not (3 <= len(line) <= max_chars):
            continue
        letters = sum(ch.isalpha() or ch == " " for ch in line)
        if letters / len(line) < 0.8:
            continue
        key = query_key(line)
        if key and key not in seen:
            seen.add(key)
            queries.append(line)
    return queries


def llm_prompt(concept: Concept, count: int) -> str:
    definition = f" ({concept.category_definition})" if concept.category_definition else ""
    return (
        f"Category of dynamic processes: {concept.category_name}{definition}\n"
        f"Concept: {concept.name}\n"
        f"Write {count} different short search queries (2 to 8 words each) that would find short "
        f"videos clearly showing {concept.name} on a video platform. One per line, no numbering.\n"
    )


def load_text_generator(model_dir: str | Path):
    """Load a local causal LM and its tokenizer (no download: ``local_files_only``)."""
    from refvps.errors import require

    transformers = require("transformers", "rem", "refvps queries --llm")
    path = Path(model_dir)
    if not path.is_dir():
        raise UsageError(
            f"--llm model folder not found: {path}",
            hint="pass a folder saved with save_pretrained (config.json, weights, tokenizer files)",
            path=path,
        )
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"cannot load a text-generation model from {path}: {exc}",
            hint="the folder needs config.json, model weights and tokenizer files of a causal LM",
            path=path,
        ) from None
    model.eval()
    return tokenizer, model


def concept_seed(seed: int, concept: Concept) -> int:
    """The sampling seed of one concept: from its id, so it does not depend on the other concepts asked."""
    return seed * 100_003 + zlib.crc32(concept.id.encode("utf-8"))


def llm_queries(
    concepts: Sequence[Concept],
    model_dir: str | Path,
    *,
    per_concept: int = 5,
    existing: Iterable[QueryRow] = (),
    seed: int = 0,
    max_new_tokens: int = 96,
    progress: Progress = NO_PROGRESS,
    cache: str | Path | None = None,
) -> list[QueryRow]:
    """Up to ``per_concept`` new queries per concept from a local model, seeded per concept so the
    result does not depend on which other concepts were asked; held to the rules of the offline
    queries (:func:`query_problem`) and never a query already present (:func:`query_key`).

    ``cache``: a JSON file where each concept's generated text is saved as soon as it exists, so an
    interrupted run resumes without asking the model again (an entry is reused only for the same
    model folder, prompt, seed and length). Progress: stage ``"model"``, one step per concept.
    """
    import torch

    tokenizer, model = load_text_generator(model_dir)
    saved = _read_generation_cache(cache)
    taken = {query_key(r.query) for r in existing}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows: list[QueryRow] = []
    with progress.stage("model", len(concepts)):
        for concept in concepts:
            prompt = llm_prompt(concept, per_concept)
            concept_seed_value = concept_seed(seed, concept)
            request = {
                "model": str(Path(model_dir).resolve()),
                "prompt": prompt,
                "seed": concept_seed_value,
                "max_new_tokens": max_new_tokens,
            }
            entry = saved.get(concept.id)
            if isinstance(entry, dict) and entry.get("request") == request and isinstance(entry.get("text"), str):
                text = entry["text"]
            else:
                text = _generate(torch, tokenizer, model, prompt, concept_seed_value, max_new_tokens, pad_id)
                if cache is not None:
                    saved[concept.id] = {"request": request, "text": text}
                    atomic_write_json(cache, saved)
            fresh = [q for q in parse_llm_queries(text) if not query_problem(q)]
            for query in fresh:
                if query_key(query) not in taken and sum(r.concept == concept.id for r in rows) < per_concept:
                    taken.add(query_key(query))
                    rows.append(QueryRow(concept.category, concept.id, query, "llm"))
            progress.advance("model", note=concept.id)
    return rows


def _generate(torch, tokenizer, model, prompt: str, seed: int, max_new_tokens: int, pad_id) -> str:
    """The model's sampled continuation of ``prompt`` (through its chat template when it has one)."""
    if getattr(tokenizer, "chat_template", None):
        input_ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt"
        )
        if not isinstance(input_ids, torch.Tensor):  # newer transformers return a BatchEncoding
            input_ids = input_ids["input_ids"]
    else:
        input_ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    torch.manual_seed(seed)
    with torch.no_grad():
        output = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            do_sample=True,
            top_p=0.9,
            temperature=0.8,
            pad_token_id=pad_id,
        )
    return tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True)


def _read_generation_cache(cache: str | Path | None) -> dict[str, Any]:
    if cache is None or not Path(cache).exists():
        return {}
    try:
        data = read_json(cache, what="model output cache")
    except DatasetError:
        return {}  # a damaged cache only costs asking the model again
    return data if isinstance(data, dict) else {}


# -- CSV ------------------------------------------------------------------------------------------
def order_rows(rows: Iterable[QueryRow], concepts: Sequence[Concept]) -> list[QueryRow]:
    """Rows grouped by concept in taxonomy order, template queries before LLM ones (stable)."""
    position = {c.id: i for i, c in enumerate(concepts)}
    return sorted(rows, key=lambda r: (position.get(r.concept, len(position)), r.source != "template"))


def write_queries_csv(path: str | Path, rows: Iterable[QueryRow]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(QUERY_COLUMNS)
    for row in rows:
        writer.writerow([row.category, row.concept, row.query, row.source])
    return atomic_write_text(path, buffer.getvalue())


def read_input_text(path: str | Path) -> str:
    """The text of an input list (queries CSV, URL list): a missing or non-text file is a usage error."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"input file not found: {path}", hint="check the path", path=path) from None
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path} is not a UTF-8 text file (byte {exc.start}: {exc.reason})",
            hint="pass a queries CSV (refvps queries writes one) or a text file of URLs, saved as UTF-8",
            path=path,
        ) from None


def read_queries_csv(path: str | Path, text: str | None = None) -> list[dict[str, Any]]:
    """Rows of a CSV with at least a ``query`` or a ``url`` column (other columns optional).

    ``text`` is the file's content when the caller has read it already.
    """
    path = Path(path)
    text = read_input_text(path) if text is None else text
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip().lower() for c in (reader.fieldnames or [])]
    if "query" not in columns and "url" not in columns:
        raise DatasetError(
            f"{path} has no 'query' or 'url' column (columns: {', '.join(columns) or 'none'})",
            hint="write the header 'category,concept,query,source' (refvps queries does) or 'url,concept'",
            path=path,
        )
    rows = []
    for row in reader:
        rows.append({(k or "").strip().lower(): (v or "").strip() for k, v in row.items()})
    return rows
