/* One player's report from the database (see player_report.h). */
#include "player_report.h"

#include <stdbool.h>
#include <string.h>

#define STR2(x) #x
#define STR(x) STR2(x)

/* Timestamps as UTC ISO text with seconds, as the engine prints its own. The cast matters
 * for databases from the old service, where some columns are TIMESTAMP without a time zone
 * written in the session's zone: it reads them in that zone (a TIMESTAMPTZ is unchanged). */
#define ISO(col)                                                                           \
    "to_char((" col ")::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* The indexes of migration 008 keep each part a lookup by player, whatever the table sizes. */
const char *const player_report_sql =
    "SELECT json_build_object("
    " 'player', (SELECT json_build_object('id', p.id, 'username', p.username,"
    "    'active', p.active, 'verified', p.verified, 'total_ap', p.total_ap,"
    "    'total_advc_mined', p.total_advc_mined,"
    "    'last_mining_event', " ISO("p.last_mining_event") ")"
    "   FROM players p WHERE p.id = $1::int),"
    " 'accounts', coalesce((SELECT json_agg(json_build_object('pool', a.pool_name,"
    "    'wallet', a.wallet, 'version', a.version,"
    "    'last_success', " ISO("a.last_success") ", 'accounted', a.state->'accounted',"
    "    'observation', a.state - 'accounted')"
    "    ORDER BY a.pool_name)"
    "   FROM m2p_accounts a WHERE a.player_id = $1::int), '[]'::json),"
    " 'recent_awards', coalesce((SELECT json_agg(json_build_object('event_id', e.id,"
    "    'pool', e.pool_name, 'advc', e.advc_amount, 'ap', e.ap_awarded,"
    "    'time', " ISO("e.event_time") ", 'reason', e.reason,"
    "    'notifications', coalesce((SELECT json_agg(json_build_object('sink', d.sink,"
    "        'state', CASE WHEN d.delivered_at IS NOT NULL THEN 'delivered'"
    "                      WHEN d.expired_at IS NOT NULL THEN 'expired' ELSE 'pending' END,"
    "        'attempts', d.attempts, 'last_error', d.last_error,"
    "        'delivered_at', " ISO("d.delivered_at") ") ORDER BY d.sink)"
    "      FROM m2p_outbox o JOIN m2p_deliveries d ON d.outbox_id = o.id"
    "      WHERE o.mining_event_id = e.id), '[]'::json)) ORDER BY e.id DESC)"
    "   FROM (SELECT * FROM mining_events WHERE player_id = $1::int"
    "         ORDER BY id DESC LIMIT " STR(PLAYER_REPORT_AWARDS) ") e), '[]'::json),"
    " 'held_awards', coalesce((SELECT json_agg(json_build_object('id', h.id,"
    "    'pool', h.pool_name, 'advc', h.advc_amount, 'ap', h.ap_awarded,"
    "    'held_at', " ISO("h.held_at") ", 'hold_reason', h.hold_reason) ORDER BY h.id)"
    "   FROM m2p_held_awards h WHERE h.player_id = $1::int AND h.status = 'held'), '[]'::json),"
    " 'engines', coalesce((SELECT json_agg(json_build_object('id', g.id,"
    "    'heartbeat', " ISO("g.heartbeat") ") ORDER BY g.id)"
    "   FROM m2p_engines g WHERE g.heartbeat > now() - interval '2 minutes'), '[]'::json)"
    ")::text";

static cJSON *account_of(cJSON *accounts, const char *pool)
{
    cJSON *a;
    cJSON_ArrayForEach(a, accounts) {
        const char *p = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "pool"));
        if (p && strcmp(p, pool) == 0)
            return a;
    }
    return NULL;
}

static bool polled_there(const cJSON *live)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(live, "polled_here"));
}

void player_report_merge(cJSON *report, cJSON *live)
{
    cJSON *accounts = cJSON_GetObjectItemCaseSensitive(report, "accounts");
    if (!cJSON_IsArray(accounts)) {
        cJSON_DeleteItemFromObjectCaseSensitive(report, "accounts");
        accounts = cJSON_AddArrayToObject(report, "accounts");
    }
    while (cJSON_IsArray(live) && cJSON_GetArraySize(live) > 0) {
        cJSON *entry = cJSON_DetachItemFromArray(live, 0);
        const char *pool = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(entry, "pool"));
        if (!pool) {
            cJSON_Delete(entry);
            continue;
        }
        cJSON *a = account_of(accounts, pool);
        if (!a) {
            a = cJSON_CreateObject();
            cJSON_AddStringToObject(a, "pool", pool);
            cJSON_AddItemToArray(accounts, a);
        }
        cJSON *had = cJSON_GetObjectItemCaseSensitive(a, "live");
        if (had && polled_there(had) && !polled_there(entry)) {
            cJSON_Delete(entry); /* another engine polls it: its view is the one that counts */
            continue;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(a, "live");
        /* The engine reads an account's state only at its first poll: before that, the
         * database knows whether there is one. */
        if (polled_there(entry) && !cJSON_GetObjectItemCaseSensitive(a, "version") &&
            !cJSON_GetObjectItemCaseSensitive(entry, "baseline"))
            cJSON_AddStringToObject(entry, "baseline",
                                    "none stored: the next successful poll is the baseline");
        cJSON_AddItemToObject(a, "live", entry);
    }
    cJSON_Delete(live);
}
