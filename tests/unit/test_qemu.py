from kernel_rules.domain.qemu import BootSpec, Machine, command_line


def test_guest_has_no_network_and_no_host_filesystem():
    argv = command_line(BootSpec("qemu", "k", "i", "console=ttyS0; rm -rf /"))
    assert argv[argv.index("-nic") + 1] == "none"
    assert "-nodefaults" in argv and "-no-user-config" in argv
    assert not any(a.startswith(("-virtfs", "-fsdev", "-netdev", "-drive")) for a in argv)
    # The command line is one argument: no shell ever sees it.
    assert argv[argv.index("-append") + 1] == "console=ttyS0; rm -rf /"


def test_machine_description_is_passed_through():
    argv = command_line(BootSpec("qemu", "k", "i", machine=Machine("pc", 2, "512M", ("virtio-rng-pci",)),
                                 accel="tcg"))
    assert argv[argv.index("-machine") + 1] == "pc"
    assert argv[argv.index("-smp") + 1] == "2"
    assert argv[argv.index("-m") + 1] == "512M"
    assert argv[argv.index("-device") + 1] == "virtio-rng-pci"
    assert argv[argv.index("-accel") + 1] == "tcg"
