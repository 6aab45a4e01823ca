/** Simulated model servers: programs beside the gateway, talking to it over HTTP only. */
export { startEchoServer, type EchoServerOptions, type EchoStats, type RunningEchoServer } from './echo-server.js';
export { runSimCommand, SIM_HELP } from './sim-command.js';
