// The kinds of the Relais API, in the order they depend on each other.
import { automationKind } from "./automation.ts";
import { campaignKind } from "./campaign.ts";
import type { KindDefinition } from "./kind.ts";
import { sendPolicyKind } from "./sendpolicy.ts";
import { senderKind } from "./sender.ts";

export const kinds: readonly KindDefinition[] = [senderKind, campaignKind, automationKind, sendPolicyKind];
