"""The second engine fixture itself: up, reachable, down, back with its images."""
from __future__ import annotations


def test_second_engine(client, busybox, second_engine):
    second_engine.load(client, busybox)
    assert second_engine.client.images.get(busybox)
    out = second_engine.client.containers.run(busybox, ['sh', '-c', 'echo hi'], remove=True)
    assert out.strip() == b'hi'
    second_engine.stop()
    second_engine.start()
    assert second_engine.client.images.get(busybox)
