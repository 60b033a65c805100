"""Query-term highlighting of untrusted passages: escaped first, then marked."""

from review.highlight import highlight_html, query_terms


def test_terms_skip_stopwords_and_duplicates():
    assert query_terms("What is the dose of Aspirin for an aspirin-allergic child?") == [
        "allergic", "aspirin", "child", "dose",
    ]  # fmt: skip


def test_matches_are_marked_whole_words_and_plurals_case_insensitive():
    html = highlight_html("Vaccines and a vaccine; vaccination is not marked.", "vaccine")
    assert html == ("<mark>Vaccines</mark> and a <mark>vaccine</mark>; vaccination is not marked.")


def test_hostile_passage_comes_out_as_text():
    passage = 'Try <script>alert("x")</script> and <img src=x onerror=alert(1)> &amp; more'
    html = highlight_html(passage, "script alert img onerror")
    assert "<script" not in html and "<img" not in html
    assert html == (
        "Try &lt;<mark>script</mark>&gt;<mark>alert</mark>(&quot;x&quot;)"
        "&lt;/<mark>script</mark>&gt;"
        " and &lt;<mark>img</mark> src=x <mark>onerror</mark>=<mark>alert</mark>(1)&gt; "
        "&amp;amp; more"
    )


def test_terms_never_match_inside_entities():
    # "amp", "lt" and "quot" are query terms; the escaped entities stay whole.
    html = highlight_html('a < b & "c"', "amp lt quot")
    assert html == "a &lt; b &amp; &quot;c&quot;"


def test_regex_characters_in_the_query_are_literal():
    assert highlight_html("costs (c++) 5$ .*", "c++ .* $5") == "costs (c++) 5$ .*"
    assert highlight_html("see c plus", "") == "see c plus"


def test_es_plurals_and_any_case_are_marked_but_not_longer_words():
    html = highlight_html("Boxes, a BOX and boxing; the box's lid.", "box")
    assert html == (
        "<mark>Boxes</mark>, a <mark>BOX</mark> and boxing; the <mark>box</mark>&#x27;s lid."
    )
