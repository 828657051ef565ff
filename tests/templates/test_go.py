"""Go's `text/template` language, feature by feature, with the text Go gives
(each expectation is what `template.Must(template.New("").Parse(t)).Execute`
prints for the same data in Go)."""

from __future__ import annotations

from typing import Any

import pytest

from localllm.templates.go import TemplateError, parse
from localllm.templates.go.values import Struct

DATA: dict[str, Any] = {
    "Name": "Ada",
    "Empty": "",
    "Zero": 0,
    "List": ["a", "b", "c"],
    "Map": {"b": 2, "a": 1},
    "Msg": Struct(Role="user", Content="hi"),
    "Float": 2.5,
    "Big": 1_000_000.0,
    "HTML": "<a href='x'>&</a>",
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello, {{ .Name }}!", "Hello, Ada!"),
        ("a  {{- .Name -}}  b", "aAdab"),
        ("a \n {{- /* a comment */ -}} \n b", "ab"),
        ("{{/* only a comment */}}x", "x"),
        ('{{ $x := .Name }}{{ $x }}{{ $x = "B" }}{{ $x }}', "AdaB"),
        (
            "{{ $ }}",
            "map[Big:1e+06 Empty: Float:2.5 HTML:<a href='x'>&</a> List:[a b c] "
            "Map:map[a:1 b:2] Msg:{user hi} Name:Ada Zero:0]",
        ),
        ("{{ range .List }}[{{ . }}]{{ end }}", "[a][b][c]"),
        ("{{ range $i, $v := .List }}{{ $i }}={{ $v }} {{ end }}", "0=a 1=b 2=c "),
        ("{{ range $k, $v := .Map }}{{ $k }}{{ $v }}{{ end }}", "a1b2"),
        ("{{ range 3 }}{{ . }}{{ end }}", "012"),
        ("{{ range .Nothing }}x{{ else }}empty{{ end }}", "empty"),
        ('{{ range .List }}{{ if eq . "b" }}{{ continue }}{{ end }}{{ . }}{{ end }}', "ac"),
        ('{{ range .List }}{{ if eq . "b" }}{{ break }}{{ end }}{{ . }}{{ end }}', "a"),
        ("{{ range $i, $_ := .List }}{{ if $i }},{{ end }}{{ $i }}{{ end }}", "0,1,2"),
        ("{{ with .Msg }}{{ .Role }}: {{ .Content }}{{ end }}", "user: hi"),
        ("{{ with .Empty }}x{{ else with .Name }}{{ . }}{{ end }}", "Ada"),
        ("{{ with .Empty }}x{{ else }}none{{ end }}", "none"),
        ("{{ if .Empty }}a{{ else if .Zero }}b{{ else if .Name }}c{{ else }}d{{ end }}", "c"),
        ("{{ if and .Name .List }}yes{{ end }}", "yes"),
        ('{{ or .Empty .Zero "fallback" }}', "fallback"),
        ("{{ and .Name .Zero .Missing.Deep }}", "0"),  # stops at the first false
        ("{{ not .Empty }} {{ not .Name }}", "true false"),
        ('{{ len .List }} {{ len .Map }} {{ len "héllo" }}', "3 2 6"),
        ('{{ index .List 1 }}{{ index .Map "b" }}', "b2"),
        ("{{ slice .List 1 }} {{ slice .Name 0 2 }}", "[b c] Ad"),
        ('{{ eq .Name "Bob" "Ada" }} {{ ne .Zero 1 }}', "true true"),
        ('{{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2.5 }}', "true true true false"),
        ('{{ print 1 2 "a" 3 "b" "c" }}', "1 2a3bc"),
        ('{{ println "a" 1 }}', "a 1\n"),
        (
            '{{ printf "%s is %d, %q, %v, %5.2f|%-4s|" .Name 36 "q" .List 3.14159 "x" }}',
            'Ada is 36, "q", [a b c],  3.14|x   |',
        ),
        ('{{ .Name | printf "<%s>" }}', "<Ada>"),
        ('{{ "x" | printf "%s%s" "y" }}', "yx"),
        ("{{ (index .List 2) | len }}", "1"),
        (
            "{{ .Float }} {{ .Big }} {{ 3.0 }} {{ 0x1F }} {{ 'a' }} {{ 1e3 }}",
            "2.5 1e+06 3 31 97 1000",
        ),
        ("{{ html .HTML }}", "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"),
        ('{{ js "it\'s <b>" }}', "it\\'s \\u003Cb\\u003E"),
        ('{{ urlquery "a b&c" }}', "a+b%26c"),
        (
            '{{ define "T" }}<{{ . }}>{{ end }}{{ template "T" .Name }}{{ template "T" }}',
            "<Ada><<no value>>",
        ),
        ('{{ block "B" .Zero }}block {{ . }}{{ end }}', "block 0"),
        ("{{ .Missing }}|{{ .Map.zzz }}", "<no value>|<no value>"),
        ('{{ `raw\\n` }}{{ "esc\\n" }}', "raw\\nesc\n"),
    ],
)
def test_language(template: str, expected: str) -> None:
    assert parse(template).execute(DATA) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ if .Name }}x", "template: :1: unexpected EOF"),
        ("a\n{{ end }}", "template: :2: unexpected {{end}}"),
        ("{{ .Name", "unclosed action"),
        ("{{ nope 1 }}", 'function "nope" not defined'),
        ("{{ $x }}", "undefined variable '$x'"),
        ("{{ break }}", "{{break}} outside {{range}}"),
        ('{{ "unterminated }}', "unterminated quoted string"),
        ("{{/* never closed }}", "unclosed comment"),
    ],
)
def test_parse_errors_name_the_line_and_the_problem(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("{", "\\{").replace("$", "\\$")):
        parse(template)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ .Msg.Nope }}", "can't evaluate field Nope in type struct"),
        ("{{ index .List 5 }}", "error calling index: index out of range: 5"),
        ("{{ eq .Name 1 }}", "error calling eq: incompatible types for comparison"),
        ("{{ len 3 }}", "error calling len: len of type int"),
        ("{{ range .Msg }}{{ end }}", "range can't iterate over"),
        ("{{ .Name 1 }}", "can't give argument to non-function Name"),
        ('{{ template "none" }}', 'no such template "none"'),
    ],
)
def test_execution_errors_say_what_go_says(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("(", "\\(").replace(")", "\\)")):
        parse(template).execute(DATA)


def test_variables_end_with_their_block() -> None:
    template = "{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}"
    assert parse(template).execute({}) == "21"
    assigned = "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}"
    assert parse(assigned).execute({}) == "2"


def test_a_runaway_template_is_stopped() -> None:
    with pytest.raises(TemplateError, match="over 100000 characters"):
        parse("{{ range 100000000000 }}xxxxxxxxxxxxxxxx{{ end }}").execute({}, limit=100_000)
