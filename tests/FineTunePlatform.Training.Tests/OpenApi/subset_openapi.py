"""Writes the part of OpenAI's OpenAPI document that the conformance test checks against.

Usage: python3 subset_openapi.py OPENAPI_JSON OUTPUT_JSON

OPENAPI_JSON is openapi.json from github.com/openai/openai-openapi (MIT licence, see LICENSE-openai-openapi); the
output keeps the operations of the APIs this platform implements (files, uploads, fine-tuning, models, evals, chat
completions) and every component they reference, directly or not, with descriptions, examples and x-oaiMeta removed
so that the committed file holds only what validation reads.
"""
import json
import sys

PREFIXES = ("/files", "/uploads", "/fine_tuning", "/models", "/evals", "/chat/completions")
DROPPED_KEYS = {"description", "example", "examples", "x-oaiMeta", "x-oaiExpandable", "x-oaiTypeLabel", "summary", "title"}


def strip(node, inside_properties=False):
    if isinstance(node, dict):
        # Under "properties" the keys are field names (a field may be called "description" or "title").
        return normalise({key: strip(value, key == "properties") for key, value in node.items() if inside_properties or key not in DROPPED_KEYS},
                         inside_properties)
    if isinstance(node, list):
        return [strip(item) for item in node]
    return node


# Errata: a oneOf whose branches overlap, so that an ordinary value matches both and fails "exactly one". A chat
# message {"role": "user", "content": "..."} is both an EasyInputMessage and an EvalItem; the document means "either".
ONE_OF_READ_AS_ANY_OF = {("EasyInputMessage", "EvalItem")}


def normalise(schema, is_property_map):
    """The document is OpenAPI 3.1 (JSON Schema 2020-12) but keeps some OpenAPI 3.0 forms; they are rewritten to
    what they mean in 2020-12, which a validator would otherwise ignore or refuse: `nullable: true` admits null (in its
    enum too), and a
    boolean `exclusiveMinimum`/`exclusiveMaximum` makes `minimum`/`maximum` exclusive."""
    if is_property_map:
        return schema
    if isinstance(schema.get("oneOf"), list):
        names = tuple(branch.get("$ref", "").split("/")[-1] for branch in schema["oneOf"] if isinstance(branch, dict))
        if names in ONE_OF_READ_AS_ANY_OF:
            schema["anyOf"] = schema.pop("oneOf")
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(schema.get(exclusive), bool):
            if schema.pop(exclusive) and bound in schema:
                schema[exclusive] = schema.pop(bound)
    if schema.pop("nullable", False) is True:
        if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
            schema["enum"] = schema["enum"] + [None]
        kind = schema.get("type")
        if isinstance(kind, str):
            schema["type"] = [kind, "null"]
        elif isinstance(kind, list):
            schema["type"] = kind if "null" in kind else kind + ["null"]
        else:
            return {"anyOf": [schema, {"type": "null"}]}
    return schema


def refs(node, found):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/"):
            found.add(ref)
        for value in node.values():
            refs(value, found)
    elif isinstance(node, list):
        for item in node:
            refs(item, found)


def main(source, target):
    with open(source, encoding="utf-8") as f:
        document = json.load(f)
    paths = {path: item for path, item in document["paths"].items() if path.startswith(PREFIXES)}
    pending, kept = set(), set()
    refs(paths, pending)
    while pending:
        ref = pending.pop()
        if ref in kept:
            continue
        kept.add(ref)
        _, _, section, name = ref.split("/", 3)
        refs(document["components"][section][name], pending)
    components = {}
    for ref in sorted(kept):
        _, _, section, name = ref.split("/", 3)
        components.setdefault(section, {})[name] = document["components"][section][name]
    subset = {"openapi": document["openapi"], "info": {"title": document["info"]["title"], "version": document["info"]["version"]},
              "paths": paths, "components": components}
    with open(target, "w", encoding="utf-8") as f:
        json.dump(strip(subset), f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
