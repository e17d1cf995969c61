"""The metric side: the catalogue, the recorder, turns, prices, LiveKit's instruments fixed."""
