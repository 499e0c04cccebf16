@boot @lab
Feature: Nothing leaves before Start
  From power-on until the greeter the derivative sends nothing at all: not
  a DHCP request, not a neighbour solicitation, not an ARP probe. From
  power-on until after Start, the NIC's own MAC address appears nowhere in
  what it sends. The capture starts with QEMU, before the first
  instruction, so an early-boot service that comes and goes before the
  greeter is seen too.

  Scenario: Nothing leaves from power-on to the greeter, and the real MAC never appears
    Given the lab's network is running
    And the computer boots from "derivative-lab"
    Then I see "greeter-welcome" within 90 seconds
    And the guest has sent nothing since power-on
    When I choose Start on the lab
    Then the guest is online within 180 seconds
    And the guest's MAC address was spoofed
