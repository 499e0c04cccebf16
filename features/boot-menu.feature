@boot-menu @derivative
Feature: Booting as a person boots the derivative
  The reference ISO shows a boot menu with a short countdown, isolinux's
  under BIOS and GRUB's under UEFI. Kernel options typed at the menu reach
  the kernel. The same image boots from a CD and from a USB stick, and
  streams its logs to the host from the start. (The power-on leak check
  lives in boot.feature, which other tests run whole.) CI leaves these
  scenarios to the nightly run: every lab scenario already types its
  options at the isolinux menu, for Tails' remote shell.

  @full-matrix
  Scenario: Kernel options typed at the BIOS boot menu reach the kernel
    Given the computer boots from "derivative" with the kernel options "tailor_typed=isolinux"
    Then the serial console shows "tailor-greeter: welcome screen shown" within 120 seconds
    When I run "cat /proc/cmdline" in the guest
    Then its output contains " tailor_typed=isolinux"
    When I run "test -d /sys/firmware/efi" in the guest
    Then the command fails

  @full-matrix @uefi
  Scenario: Kernel options typed at the UEFI boot menu reach the kernel
    Given the computer boots from "derivative-uefi" with the kernel options "tailor_typed=grub"
    Then the serial console shows "tailor-greeter: welcome screen shown" within 240 seconds
    When I run "cat /proc/cmdline" in the guest
    Then its output contains " tailor_typed=grub"
    When I run "test -d /sys/firmware/efi" in the guest
    Then the command succeeds

  @full-matrix @usb
  Scenario: A USB stick boots, and the remote shell holds the boot until the harness is ready
    Given the computer boots from "derivative-usb" with the kernel options "autotest_wait_for_remote_shell"
    Then the serial console shows "tailor-init: waiting for the test suite's signal_ready" within 120 seconds
    And the guest's agent answers within 60 seconds
    And the serial console shows "tailor-greeter: welcome screen shown" within 60 seconds
    And the guest's log shows "remote shell: the test suite is ready" within 30 seconds
    When I run "cat /sys/bus/usb/devices/*/product" in the guest
    Then its output contains "QEMU USB HARDDRIVE"
    When I run "id -un; pwd" as "amnesia" in the guest
    Then its output contains "amnesia"
    And its output contains "/home/amnesia"
