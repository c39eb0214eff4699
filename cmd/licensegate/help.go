package main

import "github.com/spf13/cobra"

// docsFooter ends the help of the license-* subcommands. Caddy's own
// footer points to Caddy's command-line documentation, which does not
// describe these commands.
const docsFooter = `These commands belong to licensegate; its README.md describes the
license_gate directive, the claims these tokens carry and a walk-through:
https://github.com/licensegate/licensegate#readme`

// useOwnHelp gives cmd the standard cobra help with licensegate's footer
// instead of the one Caddy's root command adds.
func useOwnHelp(cmd *cobra.Command) {
	cmd.SetHelpTemplate(cmd.HelpTemplate() + "\n" + docsFooter + "\n")
}
