/*
 * cli.h - the `sluice` command: parses arguments, runs a subcommand, and is
 * the only place that prints to the user or picks an exit status.
 *
 * Exit status: 0 success; 1 the rules did not compile or the run failed;
 * 2 the command line was wrong.
 */
#ifndef SL_CLI_H
#define SL_CLI_H

int sl_cli_main(int argc, char **argv);

#endif
