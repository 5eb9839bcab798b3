"""A scorer version on the pages: its heaviest substrings, its diff, the playground."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from routing import services

pytestmark = pytest.mark.django_db

SCORER = {
    "bias": -1.0,
    "threshold": 0.5,
    "features": [["race", 2.0], ["설계", 1.25], ["<b>", 0.75], ["hello", -1.5], ["typo", -0.5]],
}


@pytest.fixture
def v9(draft, operator):
    """v8 with a scorer and no keywords (v7 is its grandparent)."""
    return services.version_update_draft(actor=operator, version=draft, scorer=SCORER, keywords=[])


def test_the_version_page_lists_the_heaviest_substrings_each_way_escaped(client, reviewer, v9):
    client.force_login(reviewer)

    html = client.get("/versions/v8/").content.decode()

    assert "5 weighted substrings; score ≥ 0.5 → strong" in html
    assert "<code>race</code>" in html and "<code>hello</code>" in html
    assert "<code>&lt;b&gt;</code>" in html and "<code><b></code>" not in html
    strong_table = html.split("Push strong")[1].split("Push weak")[0]
    assert "race" in strong_table and "hello" not in strong_table


def test_the_diff_against_a_keyword_parent_shows_the_scorer_added_in_markdown(client, reviewer, v9):
    client.force_login(reviewer)

    html = client.get("/versions/diff/?old=v7&new=v8").content.decode()

    assert "Added: 5 weighted substrings, threshold 0.5." in html
    assert "### Scorer added (5 weighted substrings)" in html
    assert "Pushes strong: `race` +2, `설계` +1.25, `&lt;b&gt;` +0.75" in html


def test_the_diff_between_two_scorers_names_added_removed_and_reweighted(api, operator, v9):
    frozen = services.version_freeze(actor=operator, version=v9)
    child = services.version_copy(actor=operator, source=frozen, name="v10")
    features = [["race", 3.0], ["설계", 1.25], ["bug", 0.5], ["hello", -1.5]]
    changed = {**SCORER, "threshold": 0.25, "features": features}
    services.version_update_draft(actor=operator, version=child, scorer=changed)

    diff = api.as_(operator).get("/api/v1/versions/v10/diff/?against=v8").json()

    assert diff["scorer"]["added"] == 1 and diff["scorer"]["removed"] == 2
    assert diff["scorer"]["biggest_changes"] == [["race", 2.0, 3.0]]
    assert diff["scorer"]["new"]["threshold"] == 0.25
    assert "1 added, 2 removed, 1 reweighted, 2 unchanged." in diff["markdown"]
    assert "Biggest weight changes: `race` +2 → +3" in diff["markdown"]


def test_the_playground_shows_the_score_against_the_threshold_and_marks_what_pushed(
    client, reviewer, v7, v9
):
    client.force_login(reviewer)

    html = client.post(
        "/playground/",
        {"conversation": "user: hello, a race in the 설계 <b>", "versions": ["v7", "v8"]},
        HTTP_HX_REQUEST="true",
    ).content.decode()

    # -1 + 2 + 1.25 + 0.75 - 1.5 = 1.5
    assert "<strong>1.500</strong> ≥ threshold 0.5" in html
    assert '<mark class="mark-strong" title="race +2">race</mark>' in html
    assert '<mark class="mark-weak" title="hello -1.5">hello</mark>' in html
    assert '<mark class="mark-strong" title="&lt;b&gt; +0.75">&lt;b&gt;</mark>' in html
    assert html.count("Pushed by") == 1  # v7 has no scorer


def test_classify_prints_the_score_and_top_features_of_a_scorer_version(v9, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"messages": [{"role": "user", "content": "race typo"}]}))
    out = StringIO()

    call_command("classify", "--version", "v8", "--input", str(source), stdout=out)

    assert json.loads(out.getvalue()) == {  # -1 + 2 - 0.5 reaches 0.5
        "tier": "strong",
        "reasons": ["score:0.5>=0.5"],
        "matched_keywords": [],
        "score": 0.5,
        "top_features": [["race", 2.0], ["typo", -0.5]],
    }
