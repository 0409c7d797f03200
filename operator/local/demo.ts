// Demo data for local mode: profiles and events that make the example resources do something a
// person can watch within a minute. Appointments are booked for 24 h and a few seconds from now,
// so appointment-reminder (a day before) fires in seconds; carts trigger abandoned-cart (which
// waits 48 h), and some are bought, which cancels their reminder.

export interface DemoProfile {
  id: string;
  email: string;
  emailSubscription: "subscribed" | "unsubscribed";
  attributes: Record<string, string | number | boolean>;
}

export interface DemoEvent {
  profileId: string;
  name: string;
  id: string;
  attributes: Record<string, string | number | boolean>;
}

const firstNames = ["Ada", "Basile", "Chloé", "Dario", "Emma", "Farid", "Gaëlle", "Hugo", "Inès", "Jules"];
const domains = ["example.com", "example.fr", "gmail.com", "example.org"];
const countries = ["FR", "FR", "DE", "ES", "BE"];
const HOUR_MS = 60 * 60 * 1000;

export function demoProfiles(count: number): DemoProfile[] {
  return Array.from({ length: count }, (_, index) => {
    const number = String(index + 1).padStart(3, "0");
    return {
      id: `demo-${number}`,
      email: `customer${number}@${domains[index % domains.length] ?? "example.com"}`,
      // One in ten opted out: transactional messages still reach them, marketing does not.
      emailSubscription: index % 10 === 9 ? "unsubscribed" : "subscribed",
      attributes: {
        firstName: firstNames[index % firstNames.length] ?? "Alex",
        country: countries[index % countries.length] ?? "FR",
        loyaltyPoints: (index * 37) % 500,
        cardLast4: String(1000 + ((index * 7919) % 9000)),
      },
    };
  });
}

/** Events relative to `now` (ms): appointments due for a reminder 3–12 s from now, carts, purchases. */
export function demoEvents(profiles: readonly DemoProfile[], now: number): DemoEvent[] {
  const events: DemoEvent[] = [];
  profiles.forEach((profile, index) => {
    if (index % 5 === 0) {
      // Due 3 to 12 s after loading: a newcomer sees reminders arrive one by one.
      const appointmentAt = new Date(now + 24 * HOUR_MS + 3000 + (index / 5) * 1000).toISOString();
      const attributes = { appointmentId: `apt-${profile.id}`, appointmentAt, location: "12 rue de la Paix, Paris" };
      events.push({ profileId: profile.id, name: "appointment_booked", id: `apt-${profile.id}`, attributes });
      if (index % 15 === 0) {
        // Cancelled after booking: this profile's reminder never goes.
        events.push({
          profileId: profile.id,
          name: "appointment_cancelled",
          id: `apt-cancel-${profile.id}`,
          attributes: { appointmentId: `apt-${profile.id}` },
        });
      }
    }
    if (index % 2 === 1) {
      const cartId = `cart-${profile.id}`;
      events.push({
        profileId: profile.id,
        name: "cart_updated",
        id: cartId,
        attributes: { cartId, itemCount: 1 + (index % 4) },
      });
      if (index % 6 === 1) {
        events.push({ profileId: profile.id, name: "purchase", id: `buy-${profile.id}`, attributes: { cartId } });
      }
    }
  });
  return events;
}

/** Appointment reminders the demo should deliver: those booked and not cancelled. */
export function expectedReminders(events: readonly DemoEvent[]): number {
  const count = (name: string): number => events.filter((event) => event.name === name).length;
  return count("appointment_booked") - count("appointment_cancelled");
}

export interface DemoClient {
  /** The ingest API, e.g. http://127.0.0.1:8080 */
  baseUrl: string;
  /** "<keyId>.<secret>" */
  apiKey: string;
}

async function call(client: DemoClient, method: string, path: string, body: unknown): Promise<void> {
  const response = await fetch(`${client.baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${client.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${await response.text()}`);
}

/** Sends the profiles, then the events in one batch. Rejects with the first refused request. */
export async function loadDemo(
  client: DemoClient,
  profiles: readonly DemoProfile[],
  events: readonly DemoEvent[],
): Promise<void> {
  for (const { id, ...profile } of profiles) await call(client, "PUT", `/v1/profiles/${id}`, profile);
  await call(client, "POST", "/v1/events", { events });
}
