@firewall @lab @attempts-blocked-traffic @kind-tor @kind-bridges
Feature: The Tor-only firewall
  Only tor's own user may open connections that leave the computer; root
  is no exception. On loopback every user may use Tor's SocksPort, and
  Tor's ControlPort is for root only. The rules hold across a network
  reconnect.

  Background:
    Given the Tor network is running
    And a computer at checkpoint "tor-ready"

  Scenario: Direct TCP and UDP connections fail and nothing leaves
    When I note the firewall's state
    And I run "curl --silent --show-error --max-time 10 http://10.203.0.2/" as "amnesia" in the guest
    Then the command fails
    And the firewall's "rejected_output" counter went up
    When I note the firewall's state
    And I run "cd /tmp && tftp -g -r leak 10.203.0.2" as "amnesia" in the guest
    Then the command fails
    And the firewall's "rejected_output" counter went up
    When I note the firewall's state
    And I run "curl --silent --show-error --max-time 10 http://10.203.0.2/" as "root" in the guest
    Then the command fails
    And the firewall's "rejected_output" counter went up
    When I capture the guest's traffic for 5 seconds
    Then all Internet traffic has only flowed through Tor

  Scenario: Tor's ControlPort is for root only, its SocksPort for everyone
    When I run "printf 'PROTOCOLINFO 1\r\nQUIT\r\n' | nc -w 5 127.0.0.1 9051" as "root" in the guest
    Then the command succeeds
    And its output contains "250-PROTOCOLINFO"
    When I note the firewall's state
    And I run "printf 'PROTOCOLINFO 1\r\nQUIT\r\n' | nc -w 5 127.0.0.1 9051" as "amnesia" in the guest
    Then the command fails
    And the firewall's "rejected_control_port" counter went up
    When I fetch "http://10.203.0.2/" through Tor as "amnesia" in the guest
    Then the fetched page is the lab's web page

  Scenario: The firewall survives a network reconnect
    When I note the firewall's state
    And I unplug and replug the network cable
    Then the firewall's rules are unchanged
    When I run "curl --silent --show-error --max-time 10 http://10.203.0.2/" as "amnesia" in the guest
    Then the command fails
    And the firewall's "rejected_output" counter went up
    When I fetch "http://10.203.0.2/" through Tor in the guest
    Then the fetched page is the lab's web page
    And all Internet traffic has only flowed through Tor
