// Stream and subject names: everything that crosses a process boundary is named here.

export const Streams = {
  events: "RELAIS_EVENTS",
  sends: "RELAIS_SENDS",
  feedback: "RELAIS_FEEDBACK",
} as const;

/** Reserved event name (not a valid user event name) announcing a profile's erasure. */
export const ERASE_EVENT = "$erase";

export const Subjects = {
  /** relais.events.<namespace>.<eventName> */
  event: (namespace: string, eventName: string): string => `relais.events.${namespace}.${eventName}`,
  eventsOf: (namespace: string): string => `relais.events.${namespace}.>`,
  allEvents: "relais.events.>",
  /** relais.sends.<namespace>.<sender> */
  send: (namespace: string, sender: string): string => `relais.sends.${namespace}.${sender}`,
  allSends: "relais.sends.>",
  /**
   * relais.sends.<namespace>.<sender>.c.<campaign>.<run>: a campaign's jobs, under the Sender's
   * subject so its consumer takes them (filter `send` and `send.>`), on their own subject so a
   * deleted or suspended campaign's queued jobs can be purged without touching the others. Dots in
   * the campaign name become "_" (never in a DNS name), so the name stays one token.
   */
  campaignSend: (namespace: string, sender: string, campaign: string, runId: string): string =>
    `relais.sends.${namespace}.${sender}.c.${campaign.replace(/\./g, "_")}.${runId}`,
  /** relais.feedback.<namespace>.<outcome> */
  feedback: (namespace: string, outcome: string): string => `relais.feedback.${namespace}.${outcome}`,
  allFeedback: "relais.feedback.>",
} as const;

/** Parses relais.<kind>.<namespace>.<last> back into its namespace and last token. */
export function splitSubject(subject: string): { namespace: string; last: string } | undefined {
  const parts = subject.split(".");
  if (parts.length !== 4 || parts[0] !== "relais") return undefined;
  return { namespace: parts[2] ?? "", last: parts[3] ?? "" };
}

/** Durable consumer names (no dots allowed in them). */
export const ConsumerNames = {
  deliver: (namespace: string, sender: string): string => `deliver_${namespace}_${sender}`.replace(/\./g, "_"),
  engage: "engage",
  /** engage's consumer of RELAIS_FEEDBACK: outcomes counted into campaign run reports. */
  campaignFeedback: "engage_campaigns",
} as const;
