/**
 * Configuration: the schema with its embedded defaults, and the loader that
 * reads `config/relay.toml` (or `--config PATH`) and names every bad key.
 *
 * @module
 */
export { type Config, configSchema, sessionWorkerCount } from "./schema.ts";
export {
  ConfigError,
  type ConfigIssue,
  DEFAULT_CONFIG_PATH,
  loadConfig,
  loadConfigLenient,
  type LoadedConfig,
  parseConfig,
  parseConfigLenient,
  parseConfigText,
} from "./loader.ts";
