from kernel_rules.domain.map.addr2src import Frame, parse_addr2line

OUTPUT = """0xffffffff81000010
inner_inline
/kernel/src/include/linux/list.h:35
outer_fn
/kernel/src/kernel/fork.c:120 (discriminator 2)
0xffffffff81000020
??
??:0
0xffffffff81000030
gen_fn
/kernel/obj/include/generated/foo.h:3
real_fn
/kernel/src/fs/eventpoll.c:7
"""


def test_inline_chains_and_unmapped_addresses():
    locs = parse_addr2line(OUTPUT.splitlines())
    assert locs[0xFFFFFFFF81000010].frames == (
        Frame("inner_inline", "include/linux/list.h", 35),
        Frame("outer_fn", "kernel/fork.c", 120),
    )
    assert locs[0xFFFFFFFF81000010].outermost.file == "kernel/fork.c"
    assert locs[0xFFFFFFFF81000020].frames == ()
    # generated files are not source lines
    assert locs[0xFFFFFFFF81000030].frames == (Frame("real_fn", "fs/eventpoll.c", 7),)
