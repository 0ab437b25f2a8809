/**
 * Several certificates on one listener, chosen by the name the client asks
 * for (SNI). Each extra pair serves the DNS names in its certificate (or the
 * `hostnames` given for it); every other name gets the main certificate.
 *
 * @module
 */
import type tls from "node:tls";
import {
  type CertificateInfo,
  createServerContext,
  describeCertificate,
  loadTlsMaterial,
  type TlsMaterial,
} from "./context.ts";

/** One extra certificate (`[[tls.certificates]]`). */
export interface SniCertificateConfig {
  cert: string;
  key: string;
  /** Names it serves; default: the DNS names of the certificate. Wildcards `*.example.com`. */
  hostnames?: string[];
}

interface Entry {
  names: string[];
  context: tls.SecureContext;
  info: CertificateInfo;
  material: TlsMaterial;
}

/** The extra certificates, looked up by SNI name. */
export class SniCertificates {
  #configs: SniCertificateConfig[];
  #minVersion: "1.2" | "1.3";
  #entries: Entry[] = [];

  private constructor(configs: SniCertificateConfig[], minVersion: "1.2" | "1.3") {
    this.#configs = configs;
    this.#minVersion = minVersion;
  }

  /** Loads every pair; throws naming the file when one cannot be served. */
  static async load(
    configs: SniCertificateConfig[],
    minVersion: "1.2" | "1.3",
  ): Promise<SniCertificates> {
    const sni = new SniCertificates(configs, minVersion);
    await sni.reload();
    return sni;
  }

  /**
   * The same lookup over pairs already read (a session worker serves what the
   * main thread loaded); no file is read.
   */
  static fromMaterial(
    pairs: readonly (TlsMaterial & { names: string[] })[],
    minVersion: "1.2" | "1.3",
  ): SniCertificates {
    const sni = new SniCertificates([], minVersion);
    sni.#entries = pairs.map(({ names, cert, key }) => ({
      names,
      context: createServerContext({ cert, key }, { minVersion }),
      info: describeCertificate(cert),
      material: { cert, key },
    }));
    return sni;
  }

  /** The pairs served and their names, as PEM (for {@link SniCertificates.fromMaterial}). */
  get material(): (TlsMaterial & { names: string[] })[] {
    return this.#entries.map(({ names, material }) => ({ names, ...material }));
  }

  /** Re-reads every pair; keeps the previous set when one fails (and rethrows). */
  async reload(): Promise<void> {
    const entries: Entry[] = [];
    for (const config of this.#configs) {
      const material = await loadTlsMaterial({ cert: config.cert, key: config.key });
      const info = describeCertificate(material.cert);
      const names = (config.hostnames ?? info.subjectAltNames
        .filter((san) => san.startsWith("DNS:"))
        .map((san) => san.slice(4)))
        .map((name) => name.toLowerCase());
      if (names.length === 0) {
        throw new Error(`${config.cert}: no DNS names to serve (set hostnames)`);
      }
      entries.push({
        names,
        context: createServerContext(material, { minVersion: this.#minVersion }),
        info,
        material,
      });
    }
    this.#entries = entries;
  }

  /** Number of extra certificates. */
  get size(): number {
    return this.#entries.length;
  }

  /** The names served, per certificate (for the start log). */
  get served(): { names: string[]; info: CertificateInfo }[] {
    return this.#entries.map(({ names, info }) => ({ names, info }));
  }

  /** The context for an SNI name, or `undefined` for the main certificate. */
  lookup(servername: string): tls.SecureContext | undefined {
    const name = servername.toLowerCase().replace(/\.$/, "");
    const dot = name.indexOf(".");
    const wildcard = dot > 0 ? `*${name.slice(dot)}` : null;
    for (const entry of this.#entries) {
      if (entry.names.includes(name)) return entry.context;
    }
    if (wildcard) {
      for (const entry of this.#entries) {
        if (entry.names.includes(wildcard)) return entry.context;
      }
    }
    return undefined;
  }
}
