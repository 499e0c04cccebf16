@boot @lab
Feature: Nothing leaves before Start, and the guest looks like its base
  From power-on until the greeter the derivative sends nothing at all: not
  a DHCP request, not a neighbour solicitation, not an ARP probe. From
  power-on until after Start, the NIC's own MAC address appears nowhere in
  what it sends. The capture starts with QEMU, before the first
  instruction, so an early-boot service that comes and goes before the
  greeter is seen too.
  From power-on through Start, DHCP, going online and a fetch, an observer
  on the LAN sees the guest do what the base system of its kind does (the
  baseline in fingerprints/KIND.toml): the same DHCP options, the same IP
  and TCP habits, the same TLS greetings, a MAC spoofed the same way, no
  protocol the base system does not speak.

  Scenario: Nothing leaves from power-on to the greeter, and the real MAC never appears
    Given the lab's network is running
    And the computer boots from "derivative-lab"
    Then I see "greeter-welcome" within 90 seconds
    And the guest has sent nothing since power-on
    When I choose Start on the lab
    Then the guest is online within 180 seconds
    And the guest's MAC address was spoofed
    When I fetch the lab's web page in the guest
    Then the fetched page is the lab's web page
    And the guest looks like the reference derivative on the network
