from assistant.engine.stop_matcher import StopMatcher


def feed_all(matcher, pieces):
    out, stopped = "", False
    for p in pieces:
        text, stopped = matcher.feed(p)
        out += text
        if stopped:
            return out, True
    return out + matcher.flush(), False


def test_stop_string_split_across_pieces_is_never_emitted():
    assert feed_all(StopMatcher(["<END>"]), ["Hello <E", "N", "D> tail"]) == ("Hello ", True)


def test_held_prefix_is_released_when_it_is_not_a_stop():
    m = StopMatcher(["<END>"])
    assert m.feed("a <E") == ("a ", False)
    assert m.feed("xtra") == ("<Extra", False)


def test_earliest_of_several_stops_wins():
    assert feed_all(StopMatcher(["bb", "a"]), ["xxabb"]) == ("xx", True)


def test_no_stops_passes_everything_through():
    assert feed_all(StopMatcher([]), ["a", "b"]) == ("ab", False)


def test_tail_is_flushed_at_the_end():
    assert feed_all(StopMatcher(["User:"]), ["answer\nUse"]) == ("answer\nUse", False)
