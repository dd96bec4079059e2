"""The scripted conversation the TTFT benchmarks replay (bench_ttft, bench_slide, bench_server):
one system prompt and a list of topics, asked about in turn."""

SYSTEM = "You are a patient tutor. Answer in two or three sentences."
TOPICS = [
    "photosynthesis",
    "gravity",
    "volcanoes",
    "the water cycle",
    "magnets",
    "tides",
    "rainbows",
    "earthquakes",
    "the moon",
    "electricity",
    "sound",
    "clouds",
    "bees",
]
