// Redis key builders. Every key of a namespace carries the hash tag {<namespace>} so a namespace's
// keys share a Redis Cluster slot and Lua scripts may touch several of them atomically.

const prefix = (namespace: string): string => `relais:{${namespace}}:`;

export const RedisKeys = {
  /** HASH of one profile: a:<attribute>, email, emailSubscription, w:<endpoint hash>, ... */
  profile: (namespace: string, profileId: string): string => `${prefix(namespace)}p:${profileId}`,
  /** LIST of the profile's latest events (newest first), trimmed to a bound. */
  profileEvents: (namespace: string, profileId: string): string => `${prefix(namespace)}p:${profileId}:events`,
  /** LIST of the profile's email subscription changes (newest first), trimmed to a bound. */
  subscriptionHistory: (namespace: string, profileId: string): string => `${prefix(namespace)}p:${profileId}:subs`,
  /** ZSET profileId -> last activity (ms): every profile of the namespace, oldest activity first. */
  activity: (namespace: string): string => `${prefix(namespace)}activity`,
  /** SET of profile ids with this (normalised) email address. */
  emailIndex: (namespace: string, email: string): string => `${prefix(namespace)}email:${email}`,
  /** SET of profile ids with an address in this domain. */
  domainIndex: (namespace: string, domain: string): string => `${prefix(namespace)}domain:${domain}`,
  /** HASH email -> JSON {reason, at}: addresses never to send to (hard bounce, complaint). */
  suppressed: (namespace: string): string => `${prefix(namespace)}suppressed`,
  /** STRING with a TTL: marks an event id as recorded in profile history. */
  eventSeen: (namespace: string, eventId: string): string => `${prefix(namespace)}evseen:${eventId}`,
} as const;
