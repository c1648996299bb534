package io.cdclake.connect;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.charset.StandardCharsets;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.ConnectRecord;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.transforms.Transformation;

/**
 * Flattens a Debezium change envelope into cdclake's flat change event (docs/events.md): the
 * row's columns (after the change; for a delete, before it), then {@code __deleted} and the
 * metadata {@code __op, __lsn, __txId, __source_ts_ms, __table, __schema, __ts_ms, __snapshot,
 * __cdclake_before}, the last the old row as JSON text (the JSON converter's, schemas off).
 *
 * It writes what ExtractNewRecordState did with {@code delete.tombstone.handling.mode=rewrite},
 * {@code replace.null.with.default=false} and those {@code add.fields}, in one copy of the row
 * instead of three, with the flat schema looked up by the envelope schema's identity (Debezium
 * keeps one instance per table version) instead of hashing it: that chain of copies, each
 * validating the nested row and hashing its schema, was a third of Connect's CPU in a profile.
 *
 * With REPLICA IDENTITY FULL the old row is the whole row: a table without a key needs it to
 * know which of its rows an update changed. A record that is no change envelope (heartbeats,
 * TruncateAsChange's events) goes through untouched; an envelope with neither row is dropped,
 * as ExtractNewRecordState drops it.
 */
public class FlatChange<R extends ConnectRecord<R>> implements Transformation<R> {

    static final String DELETED = "__deleted";
    static final String BEFORE = "__cdclake_before";
    // Forgets every flat schema past this many table versions (a schema change makes a new one).
    private static final int MAX_LAYOUTS = 256;

    /** A metadata field: its flat name, and where it is read (the envelope, or its source block). */
    private record Meta(String name, boolean inSource, String field) {
    }

    private static final List<Meta> METADATA = List.of(
            new Meta("__op", false, "op"), new Meta("__lsn", true, "lsn"), new Meta("__txId", true, "txId"),
            new Meta("__source_ts_ms", true, "ts_ms"), new Meta("__table", true, "table"),
            new Meta("__schema", true, "schema"), new Meta("__ts_ms", false, "ts_ms"),
            new Meta("__snapshot", true, "snapshot"));

    /** The flat schema of one envelope schema, and its fields in write order. */
    private record Layout(Schema rowSchema, Schema flat, Field[] row, Field deleted, Field[] meta, Meta[] from,
                          Field before) {
    }

    /**
     * Struct's value array, written directly. Every value comes from a Struct Debezium filled and
     * validated against the very schemas the flat fields carry (the metadata's made optional), so
     * Struct.put validating each again, by a lookup per field, proves nothing: it was a twelfth of
     * Connect's CPU in a profile. Null on a Kafka whose Struct keeps its values otherwise; then
     * every value goes through Struct.put.
     */
    private static final VarHandle VALUES = valuesHandle();

    private final Map<Schema, Layout> layouts = new IdentityHashMap<>();
    private final JsonConverter json = new JsonConverter();

    @Override
    public R apply(R record) {
        if (record.value() == null) {
            return null;  // a tombstone: ExtractNewRecordState's rewrite mode drops it
        }
        if (!(record.value() instanceof Struct envelope) || !isEnvelope(envelope.schema())) {
            return record;
        }
        Struct after = (Struct) envelope.getWithoutDefault("after");
        Struct before = (Struct) envelope.getWithoutDefault("before");
        Struct row = after != null ? after : before;
        if (row == null) {
            return null;
        }
        Layout layout = layout(envelope.schema(), row.schema());
        Struct flat = new Struct(layout.flat);
        Object[] values = VALUES == null ? null : (Object[]) VALUES.get(flat);
        copyRow(layout, row, flat, values);
        set(flat, values, layout.deleted, after == null ? "true" : "false");
        Struct source = (Struct) envelope.getWithoutDefault("source");
        for (int i = 0; i < layout.meta.length; i++) {
            Meta meta = layout.from[i];
            Struct holder = meta.inSource ? source : envelope;
            set(flat, values, layout.meta[i], holder == null ? null : holder.getWithoutDefault(meta.field));
        }
        if (before != null) {
            byte[] text = json.fromConnectData(record.topic(), before.schema(), before);
            set(flat, values, layout.before, new String(text, StandardCharsets.UTF_8));
        }
        return record.newRecord(record.topic(), record.kafkaPartition(), record.keySchema(), record.key(),
                layout.flat, flat, record.timestamp(), record.headers());
    }

    /** The row's columns lead the flat schema in the row's own order, so its raw values copy as one block. */
    private static void copyRow(Layout layout, Struct row, Struct flat, Object[] values) {
        if (values != null) {
            System.arraycopy((Object[]) VALUES.get(row), 0, values, 0, layout.row.length);
            return;
        }
        for (Field field : layout.row) {
            flat.put(field, row.getWithoutDefault(field.name()));
        }
    }

    private static void set(Struct flat, Object[] values, Field field, Object value) {
        if (values != null) {
            values[field.index()] = value;
        } else {
            flat.put(field, value);
        }
    }

    private static VarHandle valuesHandle() {
        try {
            return MethodHandles.privateLookupIn(Struct.class, MethodHandles.lookup())
                    .findVarHandle(Struct.class, "values", Object[].class);
        } catch (ReflectiveOperationException | RuntimeException e) {
            return null;
        }
    }

    private static boolean isEnvelope(Schema schema) {
        return schema.name() != null && schema.name().endsWith(".Envelope") && schema.field("op") != null
                && schema.field("after") != null && schema.field("before") != null;
    }

    private Layout layout(Schema envelope, Schema rowSchema) {
        Layout layout = layouts.get(envelope);
        if (layout == null || layout.rowSchema != rowSchema) {
            if (layouts.size() >= MAX_LAYOUTS) {
                layouts.clear();
            }
            layout = build(envelope, rowSchema);
            layouts.put(envelope, layout);
        }
        return layout;
    }

    /** The row's fields, then the rest as ExtractNewRecordState adds them: each optional, typed as
     * the field it copies; one absent from the envelope is left out. */
    private static Layout build(Schema envelope, Schema rowSchema) {
        SchemaBuilder builder = SchemaBuilder.struct().name(rowSchema.name()).version(rowSchema.version())
                .doc(rowSchema.doc());
        if (rowSchema.parameters() != null) {
            builder.parameters(rowSchema.parameters());
        }
        for (Field field : rowSchema.fields()) {
            builder.field(field.name(), field.schema());
        }
        builder.field(DELETED, Schema.OPTIONAL_STRING_SCHEMA);
        Schema source = envelope.field("source") == null ? null : envelope.field("source").schema();
        List<Meta> present = METADATA.stream().filter(m -> sourceOf(m, envelope, source) != null).toList();
        for (Meta meta : present) {
            builder.field(meta.name, optional(sourceOf(meta, envelope, source).field(meta.field).schema()));
        }
        builder.field(BEFORE, Schema.OPTIONAL_STRING_SCHEMA);
        Schema flat = builder.build();
        return new Layout(rowSchema, flat, rowSchema.fields().stream().map(f -> flat.field(f.name())).toArray(Field[]::new),
                flat.field(DELETED), present.stream().map(m -> flat.field(m.name)).toArray(Field[]::new),
                present.toArray(Meta[]::new), flat.field(BEFORE));
    }

    private static Schema sourceOf(Meta meta, Schema envelope, Schema source) {
        Schema holder = meta.inSource ? source : envelope;
        return holder != null && holder.field(meta.field) != null ? holder : null;
    }

    private static Schema optional(Schema schema) {
        SchemaBuilder builder = new SchemaBuilder(schema.type()).name(schema.name()).version(schema.version())
                .doc(schema.doc());
        if (schema.parameters() != null) {
            builder.parameters(schema.parameters());
        }
        return builder.optional().build();
    }

    @Override
    public ConfigDef config() {
        return new ConfigDef();
    }

    @Override
    public void configure(Map<String, ?> configs) {
        // An explicit NULL stays NULL, never the column's DEFAULT (KIP-581), as in the event itself.
        json.configure(Map.of("schemas.enable", "false", "replace.null.with.default", "false"), false);
    }

    @Override
    public void close() {
        json.close();
    }
}
