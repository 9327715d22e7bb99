"""The registry search's ranking rules: a word's impact in an entry (BM25F over name, tags and
description) and a word's rarity, as pure functions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flow_memory.registry.ranking import K1, SCALE, idf, impacts
from flow_memory.registry.search import terms
from flow_memory.registry.search_index import words_of

FILLER = ["alpha", "beta", "gamma", "delta", "omega"]


def _impact(field: str, words: list[str], word: str = "orbit") -> int:
    fields = {"name": FILLER[:4], "tags": FILLER[:3], "description": FILLER * 4}
    fields[field] = words
    return impacts(fields)[word]


class TestImpact:
    def test_a_name_outweighs_tags_and_tags_a_description(self) -> None:
        # Each field of its typical length, the word once in it.
        name = _impact("name", ["orbit", *FILLER[:4]])
        tags = _impact("tags", ["orbit", *FILLER[:3]])
        description = _impact("description", ["orbit", *FILLER * 4][:20])
        assert name > tags > description > 0

    def test_more_occurrences_weigh_more_but_saturate(self) -> None:
        counts = [_impact("description", ["orbit"] * n + FILLER * 4) for n in (1, 2, 4, 16)]
        assert counts == sorted(counts)
        assert counts[-1] - counts[-2] < counts[1] - counts[0]
        assert max(counts) < SCALE * (K1 + 1)

    def test_a_longer_field_weighs_a_word_less(self) -> None:
        short = _impact("description", ["orbit", *FILLER])
        long = _impact("description", ["orbit", *FILLER * 10])
        assert short > long

    def test_every_word_of_an_entry_has_an_impact(self) -> None:
        found = impacts({"name": ["a", "b"], "tags": ["b"], "description": ["c", "c"]})
        assert set(found) == {"a", "b", "c"}
        assert all(value >= 1 for value in found.values())
        assert found["b"] > found["a"]  # in the name and in the tags

    @given(
        st.dictionaries(
            st.sampled_from(["name", "tags", "description"]),
            st.lists(st.sampled_from(["w", "x", "y", "z"]), max_size=40),
        )
    )
    def test_impacts_are_positive_integers_below_the_ceiling(
        self, fields: dict[str, list[str]]
    ) -> None:
        for value in impacts(fields).values():
            assert isinstance(value, int)
            assert 1 <= value <= round(SCALE * (K1 + 1))


class TestRarity:
    @given(st.integers(1, 1_000_000), st.data())
    def test_a_rarer_word_weighs_more(self, entries: int, data: st.DataObject) -> None:
        fewer = data.draw(st.integers(1, entries))
        more = data.draw(st.integers(fewer, entries))
        assert idf(entries, fewer) >= idf(entries, more) > 0

    def test_counts_out_of_range_are_clamped(self) -> None:
        assert idf(10, 0) == idf(10, 1)
        assert idf(10, 50) == idf(10, 10) > 0


class TestWords:
    def test_sqlite_removes_diacritics_as_its_tokenizer_did(self) -> None:
        assert words_of("Naïve Café-Crème", "sqlite") == ["naive", "cafe", "creme"]
        assert words_of("Naïve Café", "postgresql") == ["naïve", "café"]

    def test_a_query_keeps_eight_words(self) -> None:
        assert terms(" ".join(f"w{i}" for i in range(12))) == [f"w{i}" for i in range(8)]
