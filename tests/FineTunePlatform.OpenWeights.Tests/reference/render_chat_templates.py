"""Renders chat templates with Python's jinja2 as transformers' apply_chat_template does (its _compile_jinja_template:
an ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks and the loopcontrols extension, transformers' own
tojson filter, the raise_exception and strftime_now globals; the special tokens map and add_generation_prompt passed
as variables). Reads a JSON list of {template, messages, add_generation_prompt, variables} from the file given,
prints a JSON list of the rendered strings (or {"error": ...} per case)."""

import json
import sys
from datetime import datetime

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
environment.filters["tojson"] = tojson
environment.globals["raise_exception"] = raise_exception
environment.globals["strftime_now"] = strftime_now

results = []
for case in json.load(open(sys.argv[1], encoding="utf-8")):
    try:
        template = environment.from_string(case["template"])
        results.append(template.render(messages=case["messages"], add_generation_prompt=case["add_generation_prompt"], **case.get("variables", {})))
    except Exception as exception:  # noqa: BLE001 - reported to the test
        results.append({"error": f"{type(exception).__name__}: {exception}"})
print(json.dumps(results, ensure_ascii=False))
