#!/usr/bin/python3
"""Writes reference renders of chat templates under tests/fixtures/text/chat_templates/.

The references come from Python's jinja2 set up the way transformers renders a chat template
(transformers.utils.chat_template_utils._compile_jinja_template and render_jinja_template):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the loopcontrols
extension and transformers' {% generation %} tag, globals raise_exception (TemplateError) and
strftime_now, and transformers' tojson filter (json.dumps, ensure_ascii=False). strftime_now
reads a FIXED date so the references are deterministic.

Templates are read from ../shared (never copied into the repo; fixtures name the shared file
and the template's sha256): every tokenizers/*/tokenizer_config.json that has a chat_template,
and every chat_templates/*.json. Each fixture holds the conversations and, per
add_generation_prompt, the expected text or the error jinja2 raised.

constructs.json holds small inline templates, one per Jinja construct, rendered the same way;
the C++ unit tests read it without ../shared.

Run with Debian's python3-jinja2 (3.1.2), the version the issue names:
    /usr/bin/python3 tools/make_chat_template_refs.py [--shared ../shared]
"""
import argparse
import copy
import datetime
import hashlib
import json
import os
import sys

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "text", "chat_templates")

# strftime_now's clock in every reference.
FIXED_NOW = datetime.datetime(2024, 7, 26, 14, 30, 5)

# Special tokens for the standalone templates (chat_templates/*.json carry only the template),
# as the model each one comes from defines them. Qwen2.5 has no bos_token.
STANDALONE_TOKENS = {
    "llama2_chat": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "mistral_v0_3": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
    "qwen2_5": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "phi3": {"bos_token": "<s>", "eos_token": "<|endoftext|>", "unk_token": "<unk>"},
    "gemma": {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"},
    "gpt_oss": {"bos_token": "<|startoftext|>", "eos_token": "<|return|>"},
}

SPECIAL_TOKEN_KEYS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                      "cls_token", "mask_token"]


def make_environment(now):
    """transformers' chat-template environment, with `now` as strftime_now's clock."""

    class AssistantTracker(jinja2.ext.Extension):
        # transformers' {% generation %} tag; outside assistant-mask tracking it renders its body.
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(
                self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

        def _generation_support(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(format):
        return now.strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True,
        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, messages, tools, add_generation_prompt, special_tokens, extra):
    """render_jinja_template's call: messages, tools, documents, add_generation_prompt and the
    special tokens map plus extra kwargs. Returns {"expected": text} or {"error": {...}}."""
    try:
        template = env.from_string(source)
        kwargs = {**special_tokens, **extra}
        text = template.render(messages=copy.deepcopy(messages), tools=copy.deepcopy(tools),
                               documents=None, add_generation_prompt=add_generation_prompt,
                               **kwargs)
        return {"expected": text}
    except Exception as e:  # every failure is a reference too: type and message
        return {"error": {"type": type(e).__name__, "message": str(e)}}


# ---------------------------------------------------------------------- conversations

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"],
                         "description": "Temperature unit"},
            },
            "required": ["city"],
        },
    },
}

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web — returns the top results (résumé, 検索).",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for"},
                "max_results": {"type": "integer", "description": "How many", "default": 5},
                "safe": {"type": "boolean", "description": "Safe search"},
                "score": {"type": "number", "description": "Minimum score", "default": 0.5},
                "tags": {"type": "array", "items": {"type": "string"},
                         "description": "Filter tags"},
            },
            "required": ["query"],
        },
    },
}

NESTED_TOOL = {
    "type": "function",
    "function": {
        "name": "book_trip",
        "description": "Book a trip with nested options.",
        "parameters": {
            "type": "object",
            "properties": {
                "traveller": {
                    "type": "object",
                    "description": "Who travels",
                    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                    "required": ["name"],
                },
                "legs": {"type": "array", "description": "Legs",
                         "items": {"type": "object",
                                   "properties": {"from": {"type": "string"}}}},
                "class": {"type": ["string", "null"], "description": "Cabin class"},
            },
            "required": ["traveller"],
        },
    },
}

TOOL_CALL = {"id": "call12345", "type": "function",
             "function": {"name": "get_weather",
                          "arguments": {"city": "Paris", "unit": "celsius"}}}

CONVERSATIONS = [
    {"name": "user_only", "messages": [{"role": "user", "content": "Hello!"}]},
    {"name": "system_user", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2+2?"}]},
    {"name": "multi_turn", "messages": [
        {"role": "user", "content": "Hi there."},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."}]},
    {"name": "system_multi_turn_ends_with_assistant", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Japan?"},
        {"role": "assistant", "content": "Tokyo."}]},
    {"name": "unicode", "messages": [
        {"role": "system", "content": "Réponds en français — s'il te plaît. 🙂"},
        {"role": "user", "content": "Héllo 👋🏽 世界! مرحبا بالعالم \u200f(RTL)\nשלום\tend"},
        {"role": "assistant", "content": "Ça va? 😀 你好，世界。"},
        {"role": "user", "content": "🧑\u200d💻 ZWJ, e\u0301 combining, \"quotes\", 'apostrophes', "
                                    "back\\slash, nbsp\u00a0here, ideographic\u3000space"}]},
    {"name": "whitespace_edges", "messages": [
        {"role": "user", "content": "  padded  \n\n"},
        {"role": "assistant", "content": " \t answer \n"},
        {"role": "user", "content": "\nfinal question?\u3000"}]},
    {"name": "content_parts", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "You see text parts."}]},
        {"role": "user", "content": [{"type": "text", "text": "Describe "},
                                     {"type": "text", "text": "this, 'please'."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "It is text."}]},
        {"role": "user", "content": [{"type": "text", "text": "Thanks!"}]}]},
    {"name": "tool_call_round_trip", "tools": [WEATHER_TOOL], "messages": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call12345", "name": "get_weather",
         "content": "{\"temperature\": 22, \"unit\": \"celsius\"}"},
        {"role": "assistant", "content": "It is 22 °C in Paris."}]},
    {"name": "tools_available", "tools": [WEATHER_TOOL, SEARCH_TOOL], "messages": [
        {"role": "user", "content": "Find news about Lyon, then its weather."}]},
    {"name": "tools_nested_schema", "tools": [NESTED_TOOL], "messages": [
        {"role": "user", "content": "Book me a trip."}]},
    {"name": "parallel_tool_calls", "tools": [WEATHER_TOOL], "messages": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            TOOL_CALL,
            {"id": "call67890", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
        {"role": "tool", "tool_call_id": "call12345", "content": "18 degrees"},
        {"role": "tool", "tool_call_id": "call67890", "content": "25 degrees"},
        {"role": "assistant", "content": "Paris 18, Rome 25."}]},
    {"name": "tool_result_as_object", "tools": [WEATHER_TOOL], "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call12345",
         "content": {"content": {"temperature": 22.5, "ok": True, "note": None}}}]},
    {"name": "bad_tool_call_id", "tools": [WEATHER_TOOL], "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "abc", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]}]},
    {"name": "assistant_first", "messages": [
        {"role": "assistant", "content": "I speak first."},
        {"role": "user", "content": "OK."}]},
    {"name": "consecutive_users", "messages": [
        {"role": "user", "content": "One."},
        {"role": "user", "content": "Two."}]},
    {"name": "system_only", "messages": [{"role": "system", "content": "Only a system prompt."}]},
    {"name": "empty_conversation", "messages": []},
    {"name": "jinja_lookalike_content", "messages": [
        {"role": "user", "content": "{{ not_a_variable }} {% if x %}{# no #}{% endif %} }} %}"}]},
    {"name": "non_string_content", "messages": [{"role": "user", "content": 42}]},
    {"name": "long_conversation", "messages": [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"Turn number {i}."}
        for i in range(20)]},
    {"name": "developer_and_reasoning_options",
     "extra_context": {"reasoning_effort": "high", "builtin_tools": ["browser", "python"],
                       "model_identity": "You are a test model.\n"},
     "messages": [
         {"role": "developer", "content": "Answer in one word."},
         {"role": "user", "content": "Sky colour?"},
         {"role": "assistant", "content": "Blue.", "thinking": "Easy."},
         {"role": "user", "content": "Grass?"}]},
    {"name": "assistant_final_channel", "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello", "channel": "final"},
        {"role": "user", "content": "Bye"}]},
]

# The tokenizer_config.json copies of the same templates are checked on fewer conversations:
# they test loading from a config and its special tokens, not the templates again.
TOKENIZER_CONVERSATIONS = ["user_only", "system_user", "multi_turn", "unicode",
                           "tool_call_round_trip", "consecutive_users"]


# ---------------------------------------------------------------------- constructs

# One small template per construct (name, template, context). Rendered with the same
# environment and globals; messages/tools/documents/add_generation_prompt are set as
# ChatTemplate::render sets them (empty, None, None, False) unless the context overrides.
CONSTRUCTS = [
    # whitespace control, trim_blocks, lstrip_blocks
    ("trim_blocks", "{% if true %}\nyes\n{% endif %}\nend", {}),
    ("lstrip_blocks", "  {% if true %}\n  x\n  {% endif %}\n", {}),
    ("lstrip_not_for_variables", "  {{ 'v' }}\n  {% if true %}y{% endif %}", {}),
    ("dash_strips_all", "a  \n  {%- if true -%}  \n  b  \n  {%- endif -%}  \n  c", {}),
    ("variable_dashes", "a \n {{- 'b' -}} \n c", {}),
    ("plus_keeps", "  {%+ if true %}x{% endif +%}\n|", {}),
    ("comment_trim", "a\n{# note #}\nb\n  {#- gone -#}  \nc", {}),
    ("line_starting_after_trim", "{% if true %}\n    {% if true %}z{% endif %}\n{% endif %}", {}),
    ("unicode_space_lstrip", "\u3000{% if true %}x{% endif %}", {}),
    ("crlf_and_trailing_newline", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\n", {}),
    ("raw_block", "{% raw %}{{ not }}{% endraw %}|{%- raw -%}  {% x %}  {%- endraw %}", {}),
    ("data_only", "plain text with } and { braces", {}),
    # literals and output
    ("python_str_values", "{{ none }} {{ true }} {{ 1.0 }} {{ 1e16 }} {{ 1e-5 }} {{ 0.1 + 0.2 }}"
                          " {{ -0.0 }} {{ 10 / 4 }} {{ 2 ** 62 }}", {}),
    ("python_repr_values", "{{ ['a', \"it's\", 1, 2.5, none, true, {'k': [1, (2,)]}] }}", {}),
    ("string_escapes", "{{ 'tab\\there\\nnew \\u00e9 \\x41 \\101 \\d \\'q\\'' }}", {}),
    ("repr_escapes", "{{ [x] }}", {"x": "a\nb\t\\'\"\u200f\u00a0\x7f😀é"}),
    ("dict_literal_repr", "{{ {'a': 1, 'b': 'two', 3: none} }}", {}),
    ("tuple_output", "{{ 1, 'a' }}|{{ (1,) }}|{{ () }}", {}),
    ("adjacent_strings", "{{ 'a' 'b' \"c\" }}", {}),
    ("string_escape_quirks", "{{ '\\é|\\101\\7|\\z|\\U0001F600|\\x41' }}", {}),
    ("string_line_continuation", "{% set s = \"one \\\ntwo\\\n\" %}[{{ s }}]", {}),
    ("braces_inside_strings", "{{- '{{\"name\": 1}} %} {% x' -}}|{{ {'a': {'b': 1}} }}", {}),
    ("integer_literals", "{{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1_000 }} {{ 1_0.5e1 }}", {}),
    # operators
    ("arithmetic", "{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7.5 // 2 }}"
                   " {{ -7.5 % 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 3 * 'ab' }} {{ [1] * 3 }}", {}),
    ("concat_tilde", "{{ 'a' ~ 1 ~ none ~ true ~ [1] ~ undefined_name ~ 2.0 }}", {}),
    ("plus_on_strings_and_lists", "{{ 'a' + 'b' }} {{ [1] + [2, 3] }} {{ (1,) + (2,) }}", {}),
    ("comparisons", "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }}"
                    " {{ 1 == 1.0 }} {{ [1] == (1,) }} {{ {'a': 1} == {'a': 1.0} }}", {}),
    ("in_and_not_in", "{{ 'a' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }}"
                      " {{ 'z' not in 'abc' }} {{ 1 in undefined_name }}", {}),
    ("and_or_not_values", "{{ 0 or 'x' }} {{ 1 and 'y' }} {{ none or [] }} {{ '' and 'x' }}"
                          " {{ not 1 }} {{ not undefined_name }}", {}),
    ("inline_if", "{{ 'y' if true else 'n' }}|{{ 'y' if false }}|{{ 1 if 0 else 2 if 0 else 3 }}", {}),
    ("unary_minus_filter_precedence", "{{ -3|abs }} {{ -(3|abs) }} {{ 'a' + 'b'|upper }}", {}),
    ("add_str_int_fails", "{{ 'a' + 1 }}", {}),
    ("unary_minus_string_fails", "{{ - 'a' }}", {}),
    ("compare_str_int_fails", "{{ 'a' < 1 }}", {}),
    ("division_by_zero_fails", "{{ 1 // 0 }}", {}),
    # variables, attributes, items, slices
    ("attribute_and_item", "{{ d.a }} {{ d['a'] }} {{ d.missing }}|{{ l.0 }} {{ l[-1] }}"
                           " {{ l[5] }}|{{ s[1] }}", {"d": {"a": 1}, "l": [1, 2, 3], "s": "héllo"}),
    ("slices", "{{ s[::-1] }} {{ l[::-1] }} {{ s[1:3] }} {{ l[::2] }} {{ s[4:1:-1] }}"
               " {{ l[-2:] }} {{ l[:-1] }} {{ s[10:] }}|", {"s": "héllo", "l": [1, 2, 3, 4, 5]}),
    ("undefined_renders_empty", "[{{ nope }}][{{ d.nope }}][{{ none.x }}][{{ 'abc'.x }}]",
     {"d": {}}),
    ("undefined_attribute_of_undefined_fails", "{{ nope.x }}", {}),
    ("undefined_plus_fails", "{{ nope + 'a' }}", {}),
    ("dict_method_beats_key", "{{ d.items()|list }} {{ d['items'] }} {{ d.get('k') }}"
                              " {{ d.get('zz', 'dflt') }}", {"d": {"items": 5, "k": "v"}}),
    ("dict_views_and_equality", "{{ d.keys() }} {{ d.values()|list }} {{ d.items() }}"
                                " {{ d == {'b': [1], 'a': 1.0} }} {{ l[-1] == {'role': 'u'} }}",
     {"d": {"a": 1, "b": [1]}, "l": [{"role": "x"}, {"role": "u"}]}),
    ("reassign_input_variable", "{% set messages = messages[1:] if messages[0] == 0 else messages %}"
                                "{{ messages }}{% for m in messages %}{% set messages = [] %}{% endfor %}"
                                "{{ messages|length }}", {"messages": [0, 1, 2]}),
    ("mutating_method_is_unsafe", "{% set l = [1] %}[{{ l.append }}]{{ l.append(2) }}", {}),
    # tests
    ("tests", "{{ 1 is number }} {{ true is number }} {{ 1.5 is float }} {{ true is integer }}"
              " {{ 'a' is string }} {{ {} is mapping }} {{ 'a' is iterable }} {{ 1 is iterable }}"
              " {{ none is none }} {{ x is defined }} {{ x is not defined }} {{ 3 is odd }}"
              " {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 'ab' is lower }} {{ [] is sequence }}"
              " {{ 2 is in [1, 2] }} {{ 1 is eq 1 }} {{ 1 is ne 2 }} {{ 3 is gt 2 }}"
              " {{ none is sameas none }} {{ f is callable }} {{ 'x' is upper }} {{ false is false }}"
              " {{ 0 is false }} {{ true is true }} {{ none is boolean }}",
     {"f": "not callable"}),
    ("is_not_binding", "{{ not x is defined }} {{ x is not none }} {{ y is not none }}",
     {"y": None}),
    # filters
    ("string_filters", "{{ '  a b  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'Hi'|upper }}"
                       "|{{ 'Hi'|lower }}|{{ 'hello wORLD'|capitalize }}"
                       "|{{ 'hello-wORLD foo(bar)'|title }}|{{ 'a-b'|replace('-', '+') }}"
                       "|{{ 'aaa'|replace('a', 'b', 2) }}|{{ 42|string }}|{{ 'x'|center(5) }}|",
     {}),
    ("unicode_case", "{{ 'straße ǆ İ ΑΣ'|upper }} {{ 'ΑΣ ΟΔΟΣ'|lower }} {{ 'ǆa'|capitalize }}",
     {}),
    ("indent", "{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}"
               "|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ 'a\\r\\nb'|indent('>') }}|{{ 'x'|indent }}",
     {}),
    ("tojson_variants", "{{ d|tojson }}\n{{ d|tojson(indent=2) }}\n"
                        "{{ d|tojson(separators=(',', ':')) }}\n{{ d|tojson(sort_keys=true) }}\n"
                        "{{ 'é\"\\n\\x7f'|tojson }} {{ 'é😀'|tojson(ensure_ascii=true) }}"
                        " {{ [] | tojson(indent=2) }} {{ {} | tojson(indent=2) }}"
                        " {{ [1.0, 1e16, 1e-7]|tojson }} {{ {1: 2, none: 3, true: 4}|tojson }}",
     {"d": {"b": [1, 2.0, None, True, {"x": []}], "a": "😀"}}),
    ("tojson_undefined_fails", "{{ nope|tojson }}", {}),
    ("length_first_last", "{{ 'héllo'|length }} {{ [1, 2]|count }} {{ {'a': 1}|length }}"
                          " {{ nope|length }} {{ [1, 2, 3]|first }} {{ [1, 2, 3]|last }}"
                          " {{ 'abc'|first }} {{ {'a': 1, 'b': 2}|last }} [{{ []|first }}]", {}),
    ("join_list_items", "{{ [1, 'a', none]|join('-') }} {{ l|join(',', attribute='a') }}"
                        " {{ 'abc'|list }} {{ {'a': 1}|list }} {{ d|items|list }} {{ d|dictsort }}",
     {"l": [{"a": 1}, {"a": 2}], "d": {"b": 1, "a": 2}}),
    ("default_filter", "{{ nope|default('d') }} {{ none|default('d') }} {{ ''|default('d', true) }}"
                       " {{ 0|d('z', boolean=true) }} {{ 'v'|default('d') }}", {}),
    ("select_map", "{{ l|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(', ') }}"
                   " {{ l|rejectattr('role', 'equalto', 'user')|list }}"
                   " {{ l|selectattr('x')|list }} {{ l|map(attribute='x', default='?')|list }}"
                   " {{ ['a', 'b']|map('upper')|list }} {{ [1, 0, 2]|select|list }}"
                   " {{ [1, 2, 3, 4]|select('odd')|list }} {{ [1, 2, 3]|reject('even')|list }}"
                   " {{ l|map(attribute='role')|unique|list }}",
     {"l": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b", "x": 1},
            {"role": "user", "content": "c"}]}),
    ("generator_length_fails", "{{ l|selectattr('a')|length }}", {"l": [{"a": 1}]}),
    ("generator_is_truthy", "{% if l|selectattr('a') %}yes{% endif %}", {"l": []}),
    ("numbers", "{{ '42'|int + 1 }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }}"
                " {{ '0x1A'|int(0, 16) }} {{ '3.5'|float }} {{ 2|float }} {{ 2.567|round(2) }}"
                " {{ 2.5|round }} {{ 3.5|round }} {{ 2.1|round(0, 'ceil') }} {{ -3|abs }}"
                " {{ [3, 1, 2]|sum }} {{ [1, 5, 2]|max }} {{ ['b', 'A']|min }}", {}),
    ("sort_unique_reverse", "{{ [3, 1, 2]|sort }} {{ ['b', 'A', 'a']|sort }}"
                            " {{ [3, 1, 2]|sort(reverse=true) }} {{ [1, 2, 2, 'a', 'A']|unique|list }}"
                            " {{ 'abc'|reverse }} {{ [1, 2]|reverse|list }}"
                            " {{ l|sort(attribute='n')|map(attribute='n')|list }}",
     {"l": [{"n": 2}, {"n": 1}]}),
    ("string_methods", "{{ ' a '.strip() }}|{{ 'xaxy'.strip('xy') }}|{{ 'ab'.lstrip('a') }}"
                       "|{{ 'ab'.rstrip('b') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}"
                       "|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}"
                       "|{{ 'abc'.startswith('a') }}|{{ 'abc'.startswith(('x', 'a')) }}"
                       "|{{ 'abc'.endswith('bc') }}|{{ 'Hi'.upper() }}|{{ 'Hi'.lower() }}"
                       "|{{ 'a-b'.replace('-', '+') }}|{{ 'hello wORLD x1y'.title() }}"
                       "|{{ 'héllo'.find('l') }}|{{ ', '.join(['a', 'b']) }}|{{ 'a\\nb'.splitlines() }}"
                       "|{{ '{} and {name}'.format(1, name='x') }}|{{ '12'.isdigit() }}", {}),
    # statements
    ("for_loop_variables", "{% for x in l %}{{ loop.index0 }}{{ loop.index }}{{ loop.revindex }}"
                           "{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}"
                           "{{ loop.previtem }}{{ loop.nextitem }}{{ loop.cycle('a', 'b') }};"
                           "{% endfor %}", {"l": ["x", "y", "z"]}),
    ("for_else_and_filter", "{% for x in [] %}a{% else %}empty{% endfor %}|"
                            "{% for x in range(6) if x is odd %}{{ x }}{{ loop.index }},{% endfor %}", {}),
    ("for_unpacking", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}"
                      "{% for a, b in [[1, 2], 'xy'] %}{{ a }}{{ b }}{% endfor %}",
     {"d": {"a": 1, "b": 2}}),
    ("for_over_dict_and_string", "{% for k in d %}{{ k }}{% endfor %}{% for c in 'héy' %}[{{ c }}]"
                                 "{% endfor %}", {"d": {"x": 1, "y": 2}}),
    ("for_none_fails", "{% for x in none %}{% endfor %}", {}),
    ("break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}"
                       "{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("loop_scoping", "{% set x = 1 %}{% for i in range(3) %}{{ x }}{% set x = x + 1 %}{{ x }};"
                     "{% endfor %}{{ x }}|{% for i in range(3) %}{% if i == 1 %}{% set y = 5 %}"
                     "{% endif %}[{{ y }}]{% endfor %}", {}),
    ("if_elif_else", "{% for n in [1, 2, 3] %}{% if n == 1 %}one{% elif n == 2 %}two"
                     "{% else %}many{% endif %} {% endfor %}", {}),
    ("set_tuple_and_block", "{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set blk %}  x {{ a }}  "
                            "{% endset %}[{{ blk }}]|{% set t | trim | upper %}  hi  {% endset %}"
                            "[{{ t }}]", {}),
    ("namespace", "{% set ns = namespace(n=0, items=[]) %}{% for i in range(4) %}"
                  "{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }} {{ ns.items }} {{ ns.missing }}|"
                  "{% set ns2 = namespace({'a': 1}, b=2) %}{{ ns2.a }}{{ ns2.b }}", {}),
    ("set_attribute_on_dict_fails", "{% set d = {} %}{% set d.x = 1 %}", {}),
    ("macro_defaults_and_scope", "{% set g = 'G' %}{% macro m(a, b=a ~ 'x', c=none) %}"
                                 "{{ a }}|{{ b }}|{{ c }}|{{ g }}{% endmacro %}{{ m(1) }} "
                                 "{{ m(1, c=3) }} {{ m() }} {{ m(b=2) }}", {}),
    ("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}"
                             "{{ m(1, 2, z=3) }}", {}),
    ("macro_too_many_args_fails", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", {}),
    ("macro_recursion", "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}"
                        "{% endif %}{% endmacro %}{{ fact(6) }}", {}),
    ("macro_sees_call_time_globals", "{% macro m() %}{{ a }}{% endmacro %}{% set a = 1 %}"
                                     "{{ m() }}{% set a = 2 %}{{ m() }}|{% for b in [1] %}"
                                     "{% macro n() %}{{ b }}{% endmacro %}{{ n() }}{% endfor %}", {}),
    ("filter_block_with_generation", "{% filter upper %}ab{{ 'c' }}{% endfilter %}"
                                     "{% generation %}gen{% endgeneration %}", {}),
    ("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]", {}),
    ("print_statement", "{% print 'a', 1 %}", {}),
    ("raise_exception", "{{ raise_exception('Bad role: ' ~ 'x') }}", {}),
    ("strftime_now", "{{ strftime_now('%Y-%m-%d %H:%M:%S %d %b %Y %A %j %z|%Z|') }}", {}),
    ("range_and_dict", "{{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(3, 0, -1)|list }}"
                       " {{ dict(a=1, b='x') }}", {}),
    ("range_too_big_fails", "{{ range(100001)|length }}", {}),
    ("unknown_filter_in_if_is_lazy", "{% if false %}{{ x|no_such_filter }}{% endif %}ok", {}),
    ("unknown_filter_fails", "{{ x|no_such_filter }}", {}),
    ("unknown_tag_fails", "{% frobnicate %}", {}),
    ("include_refused", "{% include 'other.jinja' %}", {}),
    ("unterminated_block_fails", "a\n{% if true %}b", {}),
    ("bad_syntax_position", "line one\n  {{ 1 + }}", {}),
]


# ---------------------------------------------------------------------- driver

def sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def token_content(v):
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("content"), str):
        return v["content"]
    return None


def special_tokens_from_config(cfg):
    """transformers' special_tokens_map: the set (non-empty) tokens only."""
    out = {}
    for key in SPECIAL_TOKEN_KEYS:
        c = token_content(cfg.get(key))
        if c:
            out[key] = c
    extra = [token_content(t) for t in cfg.get("additional_special_tokens") or []]
    extra = [t for t in extra if t is not None]
    if extra:
        out["additional_special_tokens"] = extra
    return out


def render_conversations(env, source, special, conversations):
    cases = []
    for conv in conversations:
        case = {"name": conv["name"], "messages": conv["messages"],
                "tools": conv.get("tools"), "extra_context": conv.get("extra_context", {}),
                "results": []}
        for agp in (False, True):
            r = render(env, source, conv["messages"], conv.get("tools"), agp, special,
                       case["extra_context"])
            case["results"].append({"add_generation_prompt": agp, **r})
        cases.append(case)
    return cases


def now_fields():
    return {"year": FIXED_NOW.year, "month": FIXED_NOW.month, "day": FIXED_NOW.day,
            "hour": FIXED_NOW.hour, "minute": FIXED_NOW.minute, "second": FIXED_NOW.second,
            "weekday": FIXED_NOW.isoweekday() % 7, "yearday": FIXED_NOW.timetuple().tm_yday - 1}


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote", os.path.relpath(path, ROOT))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    parser.add_argument("--out", default=OUT_DIR)
    args = parser.parse_args()
    env = make_environment(FIXED_NOW)
    os.makedirs(args.out, exist_ok=True)
    common = {"generator": "tools/make_chat_template_refs.py", "jinja2_version": jinja2.__version__,
              "now": now_fields()}

    constructs = []
    base = {"messages": [], "tools": None, "documents": None, "add_generation_prompt": False}
    for name, source, context in CONSTRUCTS:
        try:
            text = env.from_string(source).render(**{**base, **context})
            result = {"expected": text}
        except Exception as e:
            result = {"error": {"type": type(e).__name__, "message": str(e)}}
        constructs.append({"name": name, "template": source, "context": context, **result})
    write_json(os.path.join(args.out, "constructs.json"), {**common, "cases": constructs})

    by_name = {c["name"]: c for c in CONVERSATIONS}
    tok_root = os.path.join(args.shared, "tokenizers")
    for family in sorted(os.listdir(tok_root)):
        path = os.path.join(tok_root, family, "tokenizer_config.json")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
        source = cfg.get("chat_template")
        if not isinstance(source, str):
            print(f"skip tokenizers/{family}: no chat_template in its config")
            continue
        special = special_tokens_from_config(cfg)
        convs = [by_name[n] for n in TOKENIZER_CONVERSATIONS]
        write_json(os.path.join(args.out, f"tokenizer_{family}.json"), {
            **common, "shared_path": f"tokenizers/{family}/tokenizer_config.json",
            "template_sha256": sha256(source), "special_tokens": special,
            "cases": render_conversations(env, source, special, convs)})

    ct_root = os.path.join(args.shared, "chat_templates")
    for fname in sorted(os.listdir(ct_root)):
        name, ext = os.path.splitext(fname)
        if ext != ".json":
            continue
        with open(os.path.join(ct_root, fname), encoding="utf-8") as f:
            source = json.load(f)["chat_template"]
        special = STANDALONE_TOKENS[name]
        write_json(os.path.join(args.out, f"{name}.json"), {
            **common, "shared_path": f"chat_templates/{fname}",
            "template_sha256": sha256(source), "special_tokens": special,
            "cases": render_conversations(env, source, special, CONVERSATIONS)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
