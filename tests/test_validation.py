"""Configuration mistakes found when buildout starts, not half-way through a build."""
from __future__ import annotations


def test_image_expose_out_of_range_is_one_line(buildout):
    b = buildout
    for exposes in ('80800', '9000-8000'):
        b.write(f'''
            [buildout]
            parts = img

            [img]
            recipe = dockeroo_nagoya:docker.image
            from = dn-test/busybox:latest
            name = {b.prefix}/img
            exposes = {exposes}
            ''')
        out = b.fail('-N')
        assert f"img: option expose: expected ports such as 80, 8000-8010 or 53/udp (port numbers " \
               f"from 1 to 65535, the lower first), got '{exposes}'" in out, out
        assert 'Traceback' not in out and 'building' not in out
