-- Booking events, webhooks and payments.
--
-- Events: a transactional outbox. Triggers on `reservations` write an event row in the
-- same transaction as every status change, whatever statement made it (a booking alone or
-- in a batch, a confirm, a cancel, an expiry, a payment): there is no change without its
-- event and no event without its change. Each shard keeps its own; the webhook job of each
-- shard fans them out to the subscribed endpoints and delivers them (see jobs::webhooks).

-- What a payment did to a reservation, as the API shows it (`payment`):
--   unpaid            nothing heard from the payment provider yet
--   failed            a payment failed; the hold stays until it expires, to pay again
--   paid              paid in full (payment_id, paid_cents)
--   mismatched        a payment of the wrong amount or currency; still pending, for staff
--   refund_requested  paid, but the stay was canceled or the hold had ended: a refund is
--                     asked for (event refund.requested)
--   refunded          the provider reported the refund
ALTER TABLE reservations
    ADD COLUMN payment_status text NOT NULL DEFAULT 'unpaid'
        CHECK (payment_status IN ('unpaid', 'failed', 'paid', 'mismatched',
                                  'refund_requested', 'refunded')),
    ADD COLUMN payment_id text,
    ADD COLUMN paid_cents bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunded_cents bigint NOT NULL DEFAULT 0;
ALTER TABLE reservations_archive
    ADD COLUMN payment_status text NOT NULL DEFAULT 'unpaid',
    ADD COLUMN payment_id text,
    ADD COLUMN paid_cents bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunded_cents bigint NOT NULL DEFAULT 0;

-- The outbox. `seq` orders a reservation's events: a change waits for the row lock of the
-- one before, so a reservation's events commit in `seq` order. `data` is the reservation
-- row as the change left it; `refund` the payment to give back (refund.requested only).
CREATE TABLE events (
    event_id       uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    seq            bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    type           text        NOT NULL,
    reservation_id uuid        NOT NULL,
    hotel_id       bigint      NOT NULL,
    data           jsonb       NOT NULL,
    refund         jsonb,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    fanned_out     boolean     NOT NULL DEFAULT false
);
-- The webhook job's work list, and the check that no earlier event of a reservation is
-- still to be fanned out before a later one is sent.
CREATE INDEX events_to_fan_out ON events (seq) WHERE NOT fanned_out;
CREATE INDEX events_of_reservation_to_fan_out ON events (reservation_id, seq) WHERE NOT fanned_out;
CREATE INDEX events_by_age ON events (created_at);

CREATE FUNCTION reservation_created_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (type, reservation_id, hotel_id, data)
    SELECT 'reservation.created', n.reservation_id, n.hotel_id, to_jsonb(n)
    FROM created_rows n
    ORDER BY n.reservation_id;
    RETURN NULL;
END
$$;

-- A status change is reservation.<status>; canceling a paid stay also asks for its refund.
CREATE FUNCTION reservation_changed_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (type, reservation_id, hotel_id, data, refund)
    SELECT e.type, n.reservation_id, n.hotel_id, to_jsonb(n), e.refund
    FROM new_rows n
    JOIN old_rows o ON o.reservation_id = n.reservation_id
    CROSS JOIN LATERAL (
        SELECT 1 AS rank, 'reservation.' || n.status AS type, NULL::jsonb AS refund
        WHERE n.status <> o.status
        UNION ALL
        SELECT 2, 'refund.requested',
               jsonb_build_object('payment_id', n.payment_id, 'amount_cents', n.paid_cents,
                                  'currency', n.currency)
        WHERE n.status = 'canceled' AND o.status <> 'canceled' AND o.payment_status = 'paid'
    ) e
    ORDER BY n.reservation_id, e.rank;
    RETURN NULL;
END
$$;

-- The refund of a paid stay being canceled is asked for in the same change.
CREATE FUNCTION cancel_asks_refund() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'canceled' AND OLD.status <> 'canceled' AND OLD.payment_status = 'paid' THEN
        NEW.payment_status := 'refund_requested';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER reservations_created AFTER INSERT ON reservations
    REFERENCING NEW TABLE AS created_rows
    FOR EACH STATEMENT EXECUTE FUNCTION reservation_created_events();
CREATE TRIGGER reservations_changed AFTER UPDATE ON reservations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION reservation_changed_events();
CREATE TRIGGER reservations_cancel_refund BEFORE UPDATE OF status ON reservations
    FOR EACH ROW WHEN (NEW.status = 'canceled' AND OLD.status <> 'canceled'
                       AND OLD.payment_status = 'paid')
    EXECUTE FUNCTION cancel_asks_refund();

-- Webhook endpoints live in the catalog (the first database), whatever the number of
-- shards: every shard's job reads them. `event_types` empty means every type; `hotel_id`
-- NULL every hotel. The secret signs deliveries and is shown once, when created.
CREATE TABLE webhook_endpoints (
    endpoint_id uuid        PRIMARY KEY,
    url         text        NOT NULL,
    event_types text[]      NOT NULL,
    hotel_id    bigint,
    secret      text        NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX webhook_endpoints_by_age ON webhook_endpoints (created_at, endpoint_id);

-- One event to one endpoint, on the event's shard. Pending until a 2xx (succeeded) or
-- until `give_up_at` passes without one (failed). `next_attempt_at` is also the claim of
-- an attempt in flight: picking a delivery moves it past the attempt's timeout, so no
-- other step sends it meanwhile, and one cut off by a crash is sent again after it.
CREATE TABLE webhook_deliveries (
    delivery_id      uuid        PRIMARY KEY,
    endpoint_id      uuid        NOT NULL,
    event_id         uuid        NOT NULL REFERENCES events ON DELETE CASCADE,
    seq              bigint      NOT NULL,
    reservation_id   uuid        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error       text,
    next_attempt_at  timestamptz NOT NULL,
    give_up_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_in_order ON webhook_deliveries (endpoint_id, reservation_id, seq)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_of_endpoint ON webhook_deliveries (endpoint_id, created_at, delivery_id);

-- Payment provider events already processed, by their webhook-id, on the shard of the
-- reservation they name: a repeat answers 2xx and changes nothing. What each did is kept
-- for staff (a mismatched amount, a payment for an unknown or ended stay).
CREATE TABLE payment_events (
    webhook_id     text        PRIMARY KEY,
    type           text        NOT NULL,
    payment_id     text        NOT NULL,
    reservation_id uuid        NOT NULL,
    amount_cents   bigint      NOT NULL,
    currency       text        NOT NULL,
    outcome        text        NOT NULL,
    received_at    timestamptz NOT NULL
);

-- The payment saga's step for one provider event, in one transaction with the change it
-- makes and the events that change writes. Answers what it did:
--   duplicate            this webhook-id was processed before; nothing changed
--   unknown_reservation  no such reservation on this shard; recorded, nothing changed
--   confirmed            paid in full while pending and held: confirmed
--   mismatched           wrong amount or currency: still pending, recorded for staff
--   refund_requested     paid after the hold ended, after a cancel, or a second time:
--                        nothing re-taken, refund.requested emitted
--   already_paid         this payment was already recorded
--   failed               a failed payment: the hold stays until it expires
--   refunded             a refund reported (refunded_cents grows)
--   ignored              an event with nothing to change (a failure after a success)
CREATE FUNCTION apply_payment(
    p_webhook_id     text,
    p_type           text,
    p_payment_id     text,
    p_reservation_id uuid,
    p_amount_cents   bigint,
    p_currency       text,
    p_now            timestamptz
) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r         reservations;
    v_outcome text;
BEGIN
    INSERT INTO payment_events (webhook_id, type, payment_id, reservation_id, amount_cents,
                                currency, outcome, received_at)
    VALUES (p_webhook_id, p_type, p_payment_id, p_reservation_id, p_amount_cents, p_currency,
            'processing', p_now)
    ON CONFLICT (webhook_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'duplicate';
    END IF;

    SELECT * INTO r FROM reservations WHERE reservation_id = p_reservation_id FOR UPDATE;
    IF NOT FOUND THEN
        v_outcome := 'unknown_reservation';
    ELSIF p_type = 'payment.succeeded' THEN
        IF r.payment_id = p_payment_id AND r.payment_status IN ('paid', 'refund_requested', 'refunded') THEN
            v_outcome := 'already_paid';
        ELSIF r.status = 'pending' AND r.hold_expires_at > p_now
              AND r.payment_status IN ('unpaid', 'failed', 'mismatched') THEN
            IF p_amount_cents = r.total_cents AND p_currency = r.currency THEN
                UPDATE reservations
                SET status = 'confirmed', payment_status = 'paid', payment_id = p_payment_id,
                    paid_cents = p_amount_cents, updated_at = p_now
                WHERE reservation_id = p_reservation_id;
                v_outcome := 'confirmed';
            ELSE
                UPDATE reservations
                SET payment_status = 'mismatched', payment_id = p_payment_id,
                    paid_cents = p_amount_cents, updated_at = p_now
                WHERE reservation_id = p_reservation_id;
                v_outcome := 'mismatched';
            END IF;
        ELSE
            -- The hold ended, the stay was canceled, or it is paid already by another
            -- payment: the nights are not taken again behind anyone's back; the money
            -- goes back. A stay not paid otherwise shows this payment and its refund.
            IF r.payment_status NOT IN ('paid', 'refund_requested', 'refunded') THEN
                UPDATE reservations
                SET payment_status = 'refund_requested', payment_id = p_payment_id,
                    paid_cents = p_amount_cents, updated_at = p_now
                WHERE reservation_id = p_reservation_id
                RETURNING * INTO r;
            END IF;
            INSERT INTO events (type, reservation_id, hotel_id, data, refund)
            VALUES ('refund.requested', r.reservation_id, r.hotel_id, to_jsonb(r),
                    jsonb_build_object('payment_id', p_payment_id,
                                       'amount_cents', p_amount_cents,
                                       'currency', p_currency));
            v_outcome := 'refund_requested';
        END IF;
    ELSIF p_type = 'payment.failed' THEN
        IF r.payment_status IN ('unpaid', 'mismatched', 'failed') THEN
            UPDATE reservations SET payment_status = 'failed', updated_at = p_now
            WHERE reservation_id = p_reservation_id;
            v_outcome := 'failed';
        ELSE
            v_outcome := 'ignored';
        END IF;
    ELSIF p_type = 'refund.succeeded' THEN
        UPDATE reservations
        SET refunded_cents = refunded_cents + p_amount_cents,
            payment_status = CASE WHEN refunded_cents + p_amount_cents >= paid_cents
                                  AND payment_status = 'refund_requested'
                                  THEN 'refunded' ELSE payment_status END,
            updated_at = p_now
        WHERE reservation_id = p_reservation_id;
        v_outcome := 'refunded';
    ELSE
        v_outcome := 'ignored';
    END IF;

    UPDATE payment_events SET outcome = v_outcome WHERE webhook_id = p_webhook_id;
    RETURN v_outcome;
END
$$;
