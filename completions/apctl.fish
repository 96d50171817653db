# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_apctl_global_optspecs
    string join \n bus= json h/help V/version
end

function __fish_apctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_apctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_apctl_using_subcommand
    set -l cmd (__fish_apctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c apctl -n "__fish_apctl_needs_command" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_needs_command" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_needs_command" -s h -l help -d 'Print help'
complete -c apctl -n "__fish_apctl_needs_command" -s V -l version -d 'Print version'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "status" -d 'Show whether apd answers, a host summary and definitions that failed to load or start'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "list" -d 'List every mdev, defined by apd or made by another tool'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "show" -d 'Show one mdev: matrix, guest matrix, and per APQN whether the guest can use it and why not'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "define" -d 'Store a new definition and print its UUID'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "undefine" -d 'Forget a definition; an active mdev keeps running'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "start" -d 'Create the mdev from its definition and assign everything, all or nothing'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "stop" -d 'Remove the mdev; the definition stays'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "assign" -d 'Add adapters, domains or control domains to an mdev'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "unassign" -d 'Remove adapters, domains or control domains from an mdev'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "masks" -d 'Show or change the host\'s apmask and aqmask'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "queues" -d 'List queues (APQNs) like lszcrypt, with their owner: host, free, or an mdev'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "config" -d 'Configure an adapter on or off (the card\'s config attribute)'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "check" -d 'Validate all definitions, or a desired-state file, against each other and the host'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "apply" -d 'Bring the host to the desired state in FILE: masks and mdevs. Prints the plan'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "import-mdevctl" -d 'Adopt mdevctl\'s definitions of vfio_ap mdevs'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "export" -d 'Print the current state as a desired-state file, or write mdevctl files'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "monitor" -d 'Print host and mdev events as they happen, one line each, until Ctrl-C'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "matrix" -d 'Draw the LPAR as a grid: one row per adapter, one column per usage domain, each cell its owner'
complete -c apctl -n "__fish_apctl_needs_command" -f -a "completions" -d 'Print a completion script for SHELL (bash, zsh, fish)'
complete -c apctl -n "__fish_apctl_using_subcommand status" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand status" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c apctl -n "__fish_apctl_using_subcommand list" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand list" -l defined -d 'Only mdevs that have a definition'
complete -c apctl -n "__fish_apctl_using_subcommand list" -l active -d 'Only mdevs that exist now'
complete -c apctl -n "__fish_apctl_using_subcommand list" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c apctl -n "__fish_apctl_using_subcommand show" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand show" -l libvirt -d 'Print the libvirt <hostdev> element for the mdev (for a domain\'s <devices>)'
complete -c apctl -n "__fish_apctl_using_subcommand show" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c apctl -n "__fish_apctl_using_subcommand define" -l uuid -d 'The UUID to use; default: apd generates one' -r
complete -c apctl -n "__fish_apctl_using_subcommand define" -l name -d 'A name to refer to the mdev by (e.g. the guest\'s name)' -r
complete -c apctl -n "__fish_apctl_using_subcommand define" -s a -l adapters -d 'Adapters (APIDs), e.g. 5,6 or 1-4' -r
complete -c apctl -n "__fish_apctl_using_subcommand define" -s d -l domains -d 'Usage domains (APQIs), e.g. 4,0xab' -r
complete -c apctl -n "__fish_apctl_using_subcommand define" -s c -l control-domains -d 'Control domains, e.g. 0x47' -r
complete -c apctl -n "__fish_apctl_using_subcommand define" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand define" -l auto -d 'Start the mdev at boot (and with apply)'
complete -c apctl -n "__fish_apctl_using_subcommand define" -l manual -d 'Start the mdev only with \'apctl start\' (the default)'
complete -c apctl -n "__fish_apctl_using_subcommand define" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand define" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c apctl -n "__fish_apctl_using_subcommand undefine" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand undefine" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand undefine" -s h -l help -d 'Print help'
complete -c apctl -n "__fish_apctl_using_subcommand start" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand start" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand start" -s h -l help -d 'Print help'
complete -c apctl -n "__fish_apctl_using_subcommand stop" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand stop" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand stop" -s h -l help -d 'Print help'
complete -c apctl -n "__fish_apctl_using_subcommand assign" -s a -l adapters -d 'Adapters (APIDs), e.g. 5,6 or 1-4' -r
complete -c apctl -n "__fish_apctl_using_subcommand assign" -s d -l domains -d 'Usage domains (APQIs), e.g. 4,0xab' -r
complete -c apctl -n "__fish_apctl_using_subcommand assign" -s c -l control-domains -d 'Control domains, e.g. 0x47' -r
complete -c apctl -n "__fish_apctl_using_subcommand assign" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand assign" -l live -d 'Change only the live mdev (refused when it is not active)'
complete -c apctl -n "__fish_apctl_using_subcommand assign" -l persistent -d 'Change only the definition (refused when there is none)'
complete -c apctl -n "__fish_apctl_using_subcommand assign" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand assign" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c apctl -n "__fish_apctl_using_subcommand unassign" -s a -l adapters -d 'Adapters (APIDs), e.g. 5,6 or 1-4' -r
complete -c apctl -n "__fish_apctl_using_subcommand unassign" -s d -l domains -d 'Usage domains (APQIs), e.g. 4,0xab' -r
complete -c apctl -n "__fish_apctl_using_subcommand unassign" -s c -l control-domains -d 'Control domains, e.g. 0x47' -r
complete -c apctl -n "__fish_apctl_using_subcommand unassign" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand unassign" -l live -d 'Change only the live mdev (refused when it is not active)'
complete -c apctl -n "__fish_apctl_using_subcommand unassign" -l persistent -d 'Change only the definition (refused when there is none)'
complete -c apctl -n "__fish_apctl_using_subcommand unassign" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand unassign" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c apctl -n "__fish_apctl_using_subcommand masks" -l apmask -d 'New apmask, kernel syntax: 0x... (absolute) or -5,-6 / +5 (relative)' -r
complete -c apctl -n "__fish_apctl_using_subcommand masks" -l aqmask -d 'New aqmask, kernel syntax: 0x... (absolute) or -4,-0x47 / +4 (relative)' -r
complete -c apctl -n "__fish_apctl_using_subcommand masks" -l chzdev-rule -d 'chzdev\'s udev rule with persistent AP masks, shown when it exists' -r -F
complete -c apctl -n "__fish_apctl_using_subcommand masks" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand masks" -l persistent -d 'Also store the resulting masks, applied at boot'
complete -c apctl -n "__fish_apctl_using_subcommand masks" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand masks" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c apctl -n "__fish_apctl_using_subcommand queues" -l adapter -d 'Only queues of these adapters' -r
complete -c apctl -n "__fish_apctl_using_subcommand queues" -l domain -d 'Only queues of these domains' -r
complete -c apctl -n "__fish_apctl_using_subcommand queues" -l owner -d 'Only queues owned by: host, free (for vfio_ap, in no mdev), or an mdev\'s name or UUID' -r
complete -c apctl -n "__fish_apctl_using_subcommand queues" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand queues" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand queues" -s h -l help -d 'Print help'
complete -c apctl -n "__fish_apctl_using_subcommand config" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand config" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand config" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c apctl -n "__fish_apctl_using_subcommand check" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand check" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c apctl -n "__fish_apctl_using_subcommand apply" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand apply" -l dry-run -d 'Print the plan and change nothing'
complete -c apctl -n "__fish_apctl_using_subcommand apply" -l prune -d 'Also stop and undefine mdevs the file does not name'
complete -c apctl -n "__fish_apctl_using_subcommand apply" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand apply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c apctl -n "__fish_apctl_using_subcommand import-mdevctl" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand import-mdevctl" -l remove-source -d 'Remove each imported file from DIR (skipped files stay), so mdevctl no longer restores it'
complete -c apctl -n "__fish_apctl_using_subcommand import-mdevctl" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand import-mdevctl" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c apctl -n "__fish_apctl_using_subcommand export" -l format -d 'What to write' -r -f -a "toml\t'The desired-state file, on stdout'
mdevctl\t'mdevctl\'s JSON files, one per definition, into DIR'"
complete -c apctl -n "__fish_apctl_using_subcommand export" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand export" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c apctl -n "__fish_apctl_using_subcommand monitor" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand monitor" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand monitor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c apctl -n "__fish_apctl_using_subcommand matrix" -s a -l adapters -d 'Only these adapters (rows), e.g. 5,6 or 1-4' -r
complete -c apctl -n "__fish_apctl_using_subcommand matrix" -s d -l domains -d 'Only these usage domains (columns), e.g. 4,0xab' -r
complete -c apctl -n "__fish_apctl_using_subcommand matrix" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand matrix" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand matrix" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c apctl -n "__fish_apctl_using_subcommand completions" -l bus -d 'The bus apd listens on: system, session, or a D-Bus address (unix:path=...). Default: $APCTL_BUS, else apd\'s private socket (/run/apd/private or $APCTL_PRIVATE_SOCKET; root only, as systemctl\'s), else the system bus' -r
complete -c apctl -n "__fish_apctl_using_subcommand completions" -l json -d 'Print machine-readable JSON on stdout instead of tables'
complete -c apctl -n "__fish_apctl_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'

# Dynamic completion of MDEV (names and UUIDs from apd), added by apctl.
function __apctl_mdevs
    set -l bus
    set -l args (commandline -opc)
    for i in (seq (count $args))
        if test "$args[$i]" = --bus; and test $i -lt (count $args)
            set bus --bus $args[(math $i + 1)]
        else if string match -q -- '--bus=*' $args[$i]
            set bus $args[$i]
        end
    end
    apctl $bus __complete-mdevs --describe 2>/dev/null
end
complete -c apctl -n "__fish_seen_subcommand_from show undefine start stop assign unassign" -f -a "(__apctl_mdevs)"
